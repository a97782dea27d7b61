"""The SLURM profile for real: the small preset (config/test.yaml) through
snakemake-executor-plugin-slurm on a one-node cluster that the project's own script stands up
(cluster/local-slurm.sh), against a local run of the same preset, bit for bit.

Slow tier, own marker: `python -m pytest -m slurm` (as root on a Debian machine; the script
installs slurm-wlm, slurmdbd, munge and mariadb-server if they are missing). The cluster is
stopped at the end, whatever happened.
"""

import csv
import datetime
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_GUARD_SECONDS
from PIL import Image

from pyode import load_arrays

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster" / "local-slurm.sh"

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

TIMED_FIGURES = {"results/image/digits/time.png"}
"""Figures that plot wall-clock time, so differ between any two runs."""


def _environment(**extra) -> dict:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return dict(os.environ, PATH=path, PYTHONPATH=str(ROOT), **extra)


def _snakemake(workdir: Path, *arguments: str, environment: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", *arguments],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )
    output = done.stdout + done.stderr
    (workdir / "snakemake.out").write_text(output)
    assert done.returncode == 0, f"snakemake {' '.join(arguments)} failed:\n{output[-5000:]}"
    return output


def _project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("config", "workflow"):
        shutil.copytree(ROOT / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("the local SLURM cluster needs root on a Debian machine (cluster/local-slurm.sh)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the SLURM executor is not installed: pip install -e '.[slurm]'")
    state = tmp_path_factory.mktemp("slurm-state")
    started = subprocess.run(
        ["bash", str(CLUSTER), "start", str(state)],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )
    try:
        assert started.returncode == 0, f"cluster/local-slurm.sh start failed:\n{started.stderr[-3000:]}"
        yield _environment(SLURM_CONF=str(state / "slurm.conf"))
    finally:
        subprocess.run(
            ["bash", str(CLUSTER), "stop", str(state)], capture_output=True, timeout=HANG_GUARD_SECONDS
        )
        for name in ("slurmctld", "slurmd", "slurmdbd", "mariadb", "munged"):
            assert not (state / "run" / f"{name}.pid").exists(), f"{name} was not stopped"


def _job_counts(log: str) -> Counter:
    """Jobs per rule from Snakemake's `Job stats` table, without the target rule `all`."""
    table = log.split("Job stats:", 1)[1].split("total", 1)[0]
    counts = Counter({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)})
    counts.pop("all", None)
    return counts


def _accounting(environment: dict, since: str) -> list[dict]:
    fields = ["JobID", "JobName", "Comment", "State", "Partition", "AllocTRES"]
    done = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", since, "-o", ",".join(fields)],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return [dict(zip(fields, line.split("|"))) for line in done.stdout.splitlines() if line]


def _arrays(path: Path) -> dict:
    """A file's arrays: pyode's sealed files through load_arrays; the cross-validation's plain .npz
    (language-neutral) without `meta`, which holds each backend's wall time."""
    if "crossval" in path.parts:
        with np.load(path) as data:
            return {key: data[key] for key in data.files if key != "meta"}
    return load_arrays(path)[0]


def _timeless_metrics(results: Path) -> dict:
    with open(results / "summary.csv") as f:
        return {
            (row["experiment"], row["run"], row["metric"]): row["value"]
            for row in csv.DictReader(f)
            if row["unit"] not in ("s", "MiB")
        }


def test_small_preset_through_slurm_equals_a_local_run(cluster, tmp_path):
    local = _project(tmp_path / "local")
    local_log = _snakemake(
        local, "all", "--cores", "2", "--configfile", "config/test.yaml", environment=_environment()
    )

    remote = _project(tmp_path / "slurm")
    since = (datetime.datetime.now() - datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    remote_log = _snakemake(
        remote,
        "all",
        "--profile",
        "workflow/profiles/slurm",
        "--configfile",
        "config/test.yaml",
        "--slurm-init-seconds-before-status-checks",
        "5",
        environment=cluster,
    )

    # Every job went through sbatch: one submission per job, each one in SLURM's accounting,
    # completed, with the rule and the resources the profile asks for.
    expected = _job_counts(local_log)
    assert _job_counts(remote_log) == expected
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", remote_log))
    assert len(submitted) == sum(expected.values())
    assert "localrule" not in remote_log.replace("localrule all:", "")
    records = {record["JobID"]: record for record in _accounting(cluster, since)}
    assert submitted <= set(records), f"not in sacct: {sorted(submitted - set(records))}"
    jobs = [records[job] for job in submitted]
    assert {job["State"] for job in jobs} == {"COMPLETED"}
    rules = Counter(re.match(r"rule_(\w+?)(_wildcards_.*)?$", job["Comment"])[1] for job in jobs)
    assert rules == expected
    for job in jobs:
        if job["Comment"].startswith("rule_image_train_"):
            assert job["Partition"] == "gpu" and "gres/gpu=1" in job["AllocTRES"], job
        elif job["Comment"].startswith(("rule_classify_train_", "rule_dynamics_train_")):
            assert job["Partition"] == "cpu" and "cpu=2" in job["AllocTRES"], job

    # The same results: every array file, every figure but those that plot wall time, every metric
    # that is not a time or a memory size.
    files = sorted(p.relative_to(local) for p in (local / "results").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(remote) for p in (remote / "results").rglob("*") if p.is_file())
    arrays = [path for path in files if path.suffix == ".npz"]
    figures = [path for path in files if path.suffix in (".png", ".gif") and str(path) not in TIMED_FIGURES]
    assert len(arrays) >= 20 and len(figures) >= 20
    for path in arrays:
        ours, theirs = _arrays(local / path), _arrays(remote / path)
        assert ours.keys() == theirs.keys(), path
        assert all(np.array_equal(ours[key], theirs[key]) for key in ours), f"{path} differs"
    for path in figures:
        if (local / path).read_bytes() != (remote / path).read_bytes():
            with Image.open(local / path) as ours, Image.open(remote / path) as theirs:
                assert ours.size == theirs.size and ours.tobytes() == theirs.tobytes(), f"{path} differs"
    assert _timeless_metrics(local / "results") == _timeless_metrics(remote / "results")
