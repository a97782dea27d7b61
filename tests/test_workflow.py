"""The Snakemake workflow for real, on the tiny config, in a temporary copy of the project."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _snakemake(workdir: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *arguments],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        check=check,
        timeout=900,
    )


@pytest.fixture
def project(tmp_path):
    for name in ("Snakefile", "config", "workflow"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    return tmp_path


def _tiny_config(project: Path) -> Path:
    config = yaml.safe_load((project / "config" / "test.yaml").read_text())
    config["scratch"] = {"train_steps": 20, "num_pairs": 1}
    path = project / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_tiny_run_end_to_end_and_nothing_to_redo(project):
    config = _tiny_config(project)
    _snakemake(project, "all", "--cores", "2", "--configfile", str(config))
    for model in ("node", "anode"):
        run = project / "results" / "classify" / "spiral" / model
        for name in (
            "metrics.json",
            "model.eqx",
            "history.jsonl",
            "loss.png",
            "dynamics.png",
            "decision.png",
        ):
            assert (run / name).stat().st_size > 0, name
        metrics = json.loads((run / "metrics.json").read_text())
        assert 0.0 <= metrics["test_accuracy"] <= 1.0
        assert metrics["settings"]["field"]["width"] == 8
        assert metrics["train_nfe_forward"] == metrics["train_nfe_counted"] == 16
    with open(project / "results" / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    experiments = sorted(row.get("experiment") or "scratch" for row in summary)
    assert experiments.count("classify") == 2 and "scratch" in experiments
    assert all(row["test_accuracy"] for row in summary if row.get("experiment") == "classify")
    assert json.loads((project / "results" / "summary.json").read_text())["versions"]["jax"]
    assert (project / "results" / "scratch" / "metrics.json").exists()
    for system, fits in (("regression_ab", ["pairs"]), ("linear_spiral", ["linear"])):
        folder = project / "results" / "dynamics" / system
        for name in (
            "metrics.json",
            "loss.png",
            "trajectories.png",
            "field.png",
            "snapshots.png",
            "training.gif",
        ):
            assert (folder / name).stat().st_size > 0, name
        metrics = json.loads((folder / "metrics.json").read_text())
        assert sorted(metrics["fits"]) == fits and metrics["dtype"]["training"] == "float32"
    again = _snakemake(project, "all", "-n", "--cores", "2", "--configfile", str(config))
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_wrong_config_key_is_named(project):
    config = yaml.safe_load((project / "config" / "test.yaml").read_text())
    config["classify"]["models"][0]["augmnet"] = 1
    (project / "bad.yaml").write_text(yaml.safe_dump(config))
    result = _snakemake(project, "all", "-n", "--configfile", "bad.yaml", check=False)
    assert result.returncode != 0
    assert "augmnet" in result.stdout + result.stderr


def test_a_wrong_config_value_is_named(project):
    config = yaml.safe_load((project / "config" / "test.yaml").read_text())
    config["classify"]["solve"]["solver"] = "rk5"
    (project / "bad.yaml").write_text(yaml.safe_dump(config))
    result = _snakemake(project, "all", "-n", "--configfile", "bad.yaml", check=False)
    assert result.returncode != 0
    assert "rk5" in result.stdout + result.stderr


def test_lint_is_clean(project):
    result = _snakemake(project, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
