"""The Snakemake workflow for real, on the tiny config, in a temporary copy of the project."""

import csv
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import HANG_GUARD_SECONDS

from pyode import load_arrays, save_arrays
from pyode.reference import find_julia

ROOT = Path(__file__).resolve().parents[1]


def _snakemake(workdir: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if (workdir / "pyode").is_dir():  # a project copy with its own package: its code is what runs
        environment["PYTHONPATH"] = os.pathsep.join([str(workdir), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", *arguments],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(arguments)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def _copy_project(folder: Path) -> Path:
    """The workflow's files in `folder`: config, workflow/, the root Snakefile and its profiles link."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config", "workflow", "Snakefile"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
    (folder / "profiles").symlink_to(os.readlink(ROOT / "profiles"))
    return folder


@pytest.fixture
def project(tmp_path):
    return _copy_project(tmp_path / "project")


def _config(project: Path, change=None, name: str = "tiny.yaml") -> str:
    config = yaml.safe_load((project / "config" / "test.yaml").read_text())
    if change:
        change(config)
    (project / name).write_text(yaml.safe_dump(config))
    return name


def _planned_rules(project: Path, config: str) -> set[str]:
    """The rules a dry run of `all` would run (empty when there is nothing to be done)."""
    plan = _snakemake(project, "all", "-n", "--cores", "2", "--configfile", config)
    output = plan.stdout + plan.stderr
    if "Nothing to be done" in output:
        return set()
    table = output.split("Job stats:")[1].split("total")[0]
    return {line.split()[0] for line in table.splitlines()[3:] if line.strip()}


def test_tiny_run_end_to_end_and_nothing_to_redo(project):
    """The whole workflow on the tiny config, in a copy with its own package and README: then a change
    to one experiment's module plans that experiment's rules again and a change to the README none."""
    shutil.copytree(ROOT / "pyode", project / "pyode", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "README.md", project / "README.md")
    config = _config(project)
    done = _snakemake(project, "all", "--cores", "2", "--configfile", config)
    _check_claims(project / "results", done.stdout + done.stderr)
    for model in ("node", "anode"):
        run = project / "results" / "classify" / "spiral" / model
        for name in (
            "metrics.json",
            "model.npz",
            "history.jsonl",
            "loss.png",
            "dynamics.png",
            "decision.png",
        ):
            assert (run / name).stat().st_size > 0, name
        assert not (run / "train-state").exists()
        record = json.loads((run / "metrics.json").read_text())
        metrics = record["runs"][0]["metrics"]
        assert record["runs"][0]["run"] == f"spiral/{model}"
        assert 0.0 <= metrics["test_accuracy"] <= 1.0
        assert record["runs"][0]["settings"]["field"]["width"] == 8
        assert metrics["train_nfe_forward"] == metrics["train_nfe_counted"] == 16
    with open(project / "results" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"experiment", "run", "metric", "value", "unit", "model.augment"} <= set(rows[0])
    runs = {(row["experiment"], row["run"]) for row in rows}
    assert {("classify", "spiral/node"), ("classify", "spiral/anode"), ("regression", "a_to_b")} <= runs
    assert {("dynamics", "regression_ab/pairs"), ("dynamics", "linear_spiral/linear")} <= runs
    assert ("image", "digits/odenet/rk4-checkpoint") in runs
    assert {
        ("cnf", "8gaussians/ffjord"),
        ("sde", "ou"),
        ("sde", "gbm/euler"),
        ("sde", "gbm/milstein"),
    } <= runs
    for name in ("metrics.json", "loss.png", "density.png", "flow.gif"):
        assert (project / "results" / "cnf" / "8gaussians" / "ffjord" / name).stat().st_size > 0, name
    for name in ("metrics.json", "loss.png", "coefficients.png", "paths.png", "marginals.png"):
        assert (project / "results" / "sde" / "ou" / name).stat().st_size > 0, name
    assert (project / "results" / "sde" / "convergence" / "convergence.png").stat().st_size > 0
    nll = [r for r in rows if r["experiment"] == "cnf" and r["metric"] == "test_nll"]
    assert len(nll) == 1 and nll[0]["unit"] == "nats" and float(nll[0]["value"]) > 0
    assert {("latent", "obs8/latent_ode"), ("latent", "obs8/rnn")} <= runs
    assert {("sonode", "crossing/node"), ("sonode", "crossing/sonode")} <= runs
    accuracy = [r for r in rows if r["metric"] == "test_accuracy" and r["experiment"] == "classify"]
    assert len(accuracy) == 2 and all(r["unit"] == "fraction" and r["value"] for r in accuracy)
    assert json.loads((project / "results" / "summary.json").read_text())["versions"]["jax"]
    for system in ("regression_ab", "linear_spiral"):
        for name in (
            "metrics.json",
            "loss.png",
            "trajectories.png",
            "field.png",
            "snapshots.png",
            "training.gif",
        ):
            assert (project / "results" / "dynamics" / system / name).stat().st_size > 0, name
    for name in (
        "obs8/metrics.json",
        "obs8/spirals.png",
        "obs8/latent.png",
        "obs8/loss.png",
        "rmse.png",
        "summary.md",
    ):
        assert (project / "results" / "latent" / name).stat().st_size > 0, name
    for name in ("metrics.json", "loss.png", "trajectories.png"):
        assert (project / "results" / "sonode" / "crossing" / name).stat().st_size > 0, name
    assert _planned_rules(project, config) == set()
    code = json.loads((project / "results" / "classify" / "spiral" / "node" / "metrics.json").read_text())[
        "code"
    ]
    assert code["digest"] and code["experiment"] == "classify" and code["jax"]
    _snakemake(project, "--report", "results/report.html", "--configfile", config)
    _check_report_in_a_browser(project / "results")
    with open(project / "README.md", "a") as f:
        f.write("\nA line that changes no result.\n")
    assert _planned_rules(project, config) == set()
    with open(project / "pyode" / "experiments" / "classify.py", "a") as f:
        f.write("\n# A change to the classification experiment's code.\n")
    planned = {"classify_data", "classify_train", "classify_evaluate", "summary", "claims", "all"}
    assert _planned_rules(project, config) == planned


def _check_claims(results: Path, output: str) -> None:
    """The tiny run is no claim's preset: every claim is listed, not run, with the reason; the claims whose
    files it writes are read all the same (one seed each); the run ends with the tally line."""
    ledger = yaml.safe_load((ROOT / "config" / "claims.yaml").read_text())["claims"]
    claims = json.loads((results / "claims.json").read_text())
    tally = f"0 of 0 claims hold; failing: none; not run: {len(ledger)} (results/claims.md says why)"
    assert claims["tally"] == tally and f"Claims: {tally}\n" in output
    assert claims["run"] == "config/config.yaml merged with tiny.yaml (preset tiny)"
    assert [c["id"] for c in claims["claims"]] == [c["id"] for c in ledger]
    by_id = {c["id"]: c for c in claims["claims"]}
    assert all(c["verdict"] == "not run" and c["reason"].startswith("declared for ") for c in by_id.values())
    orders = by_id["sde-euler-maruyama-orders"]
    assert orders["would"] in ("holds", "fails") and orders["files"] == ["sde/convergence/metrics.json"]
    assert all(
        m["n"] == 1 and math.isfinite(m["mean"]) and m["sd"] is None for m in orders["metrics"].values()
    )
    crossing = by_id["sonode-crossing"]["metrics"]  # the tiny run trains NODE and SONODE on it, not ANODE
    assert crossing["node"]["n"] == crossing["sonode"]["n"] == 1
    assert crossing["anode"]["unreadable"] == "sonode/crossing/metrics.json has no run 'crossing/anode'"
    assert "latent/obs30" in by_id["latent-beats-rnn-at-30-and-50"]["metrics"]["latent30"]["unreadable"]
    table = (results / "claims.md").read_text()
    assert f"**{tally}**" in table and table.count("| not run") == len(ledger)
    assert (results / "claims.png").stat().st_size > 10_000


def test_the_root_snakefile_and_workflow_snakefile_plan_the_same_jobs_with_the_same_profile(project):
    config = _config(project)
    plans = []
    for entry in ([], ["--snakefile", "workflow/Snakefile"]):
        done = _snakemake(project, "-n", "--configfile", config, *entry)  # the default target
        output = done.stdout + done.stderr
        assert "Using workflow specific profile" in output and "profiles/default" in output
        plans.append(output.split("Job stats:")[1].split("total")[0])
    assert plans[0] == plans[1] and "classify_train" in plans[0]


def test_an_interrupted_workflow_says_what_was_saved_and_that_the_same_command_resumes(project):
    """Ctrl-C reaches Snakemake and its jobs (one process group): the training job saves its state and
    exits 130, and the run ends in one line naming the saved state, with Snakemake's status 1."""

    def long_training(config):
        config["classify"]["models"] = config["classify"]["models"][:1]
        config["classify"]["train"].update(steps=1_000_000, checkpoint_every=2)

    config = _config(project, long_training)
    target = "results/classify/spiral/node/model.npz"
    environment = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile", config]
    process = subprocess.Popen(
        command,
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    checkpoint = project / "results" / "classify" / "spiral" / "node" / "train-state" / "checkpoint.npz"
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=HANG_GUARD_SECONDS)
    assert process.returncode == 1, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(
        "Interrupted: 1 job(s) stopped; training state saved in results/classify/spiral/node/"
    )
    assert "Run the same command again to resume" in last
    assert "At least one job did not complete successfully" not in stderr
    _, metadata = load_arrays(checkpoint)
    assert metadata["step"] >= 2


def _report_categories() -> dict[str, tuple[str, bool]]:
    """results/<experiment> -> its report category and whether the next folder is the subcategory, as
    each experiment's .smk declares them (`category=`, a `subcategory=` naming a wildcard), so that a
    new experiment is checked without a line here."""
    declared = {}
    for rules in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        categories = set(re.findall(r'(?<!sub)category="([^"]+)"', rules.read_text()))
        if categories and rules.stem not in ("bench", "claims"):
            assert len(categories) == 1, f"{rules.name} files its figures under {categories}"
            by_folder = re.search(r'subcategory="\{[a-z_]+\}"', rules.read_text()) is not None
            declared[rules.stem] = (categories.pop(), by_folder)
    return declared


def _subcategory(parts: tuple[str, ...], by_folder: bool) -> str:
    """The report's subcategory of results/<parts>: the data set, system, density, process or task."""
    if parts[0] == "sde" and parts[1] == "convergence":
        return "solver convergence"
    if parts[0] == "latent" and parts[1].startswith("obs"):
        return f"{parts[1][3:]} observations"
    return parts[1] if by_folder else "Other"


def _expected_report(results: Path) -> dict[str, str]:
    """Every figure and table the report must hold -> its category (and subcategory)."""
    expected = {"results/summary.html": "Summary/Other", "results/claims.png": "Claims/Other"}
    categories = _report_categories()
    for path in sorted(results.rglob("*")):
        if path.parent == results or (path.suffix not in (".png", ".gif") and path.name != "summary.html"):
            continue
        parts = path.relative_to(results).parts
        category, by_folder = categories[parts[0]]
        expected[f"results/{'/'.join(parts)}"] = f"{category}/{_subcategory(parts, by_folder)}"
    return expected


BROWSER_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

CHECK_RESULTS = """async () => {
  const checks = {};
  for (const [path, result] of Object.entries(results)) {
    const check = {caption: result.caption.trim().length, mime: result.mime_type};
    if (result.mime_type.startsWith("image/")) {
      const image = new Image();
      image.src = result.data_uri;
      await image.decode();
      check.width = image.naturalWidth;
    } else {
      const html = atob(result.data_uri.split("base64,")[1]);
      check.rows = new DOMParser().parseFromString(html, "text/html").querySelectorAll("tbody tr").length;
    }
    checks[path] = check;
  }
  return checks;
}"""


def _check_report_in_a_browser(results: Path) -> None:
    """Open the report in headless Chromium: every figure decodes, every table has its CSV's rows, each
    under its experiment's category with a caption, no console errors; screenshot in results/."""
    chromium = shutil.which("chromium")
    playwright = importlib.util.find_spec("playwright")
    if chromium is None or playwright is None:
        if os.environ.get("CI"):
            raise AssertionError("CI must install Debian's chromium and playwright (.ci/run)")
        pytest.skip("the report check needs Debian's chromium and the playwright package")
    from playwright.sync_api import sync_playwright

    expected = _expected_report(results)
    problems = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, headless=True, args=BROWSER_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda message: message.type == "error" and problems.append(message.text))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url[:80]}"))
            page.goto((results / "report.html").as_uri())
            page.get_by_role("link", name="Classification").wait_for()
            page.screenshot(path=ROOT / "results" / "report-front-page.png")
            categories = page.evaluate("categories")
            found = {
                path: f"{category}/{subcategory}"
                for category, subcategories in categories.items()
                for subcategory, paths in subcategories.items()
                for path in paths
            }
            checks = page.evaluate(CHECK_RESULTS)
            page.get_by_role("link", name="Summary").click()  # shown through the report's own menu
            page.locator("tr", has_text="every run's metrics").locator("a[iconname=eye]").click()
            shown_rows = page.frame_locator("iframe").locator("tbody tr")
            shown_rows.first.wait_for()
            shown = shown_rows.count()
            page.screenshot(path=ROOT / "results" / "report-summary-table.png")
        finally:
            browser.close()
    assert not problems, problems
    assert found == expected
    assert shown == checks["results/summary.html"]["rows"]
    for path, check in checks.items():
        assert check["caption"] > 0, f"{path} has no caption"
        if path.endswith(".html"):
            with open(results.parent / path.replace(".html", ".csv")) as f:
                assert check["rows"] == len(f.readlines()) - 1 > 0, path
        else:
            assert check["width"] > 0, path


def _model(project: Path) -> dict:
    arrays, _ = load_arrays(project / "results" / "classify" / "spiral" / "node" / "model.npz")
    return arrays


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_changed_inputs_and_forcerun_retrain_from_scratch(project, tmp_path):
    target = "results/classify/spiral/node/model.npz"
    config = _config(project)
    _snakemake(project, target, "--cores", "2", "--configfile", config)
    before = _model(project)

    def noisier(config):
        config["classify"]["datasets"][0]["noise"] = 0.3

    config = _config(project, noisier, "noisy.yaml")
    _snakemake(project, target, "--cores", "2", "--configfile", config)
    changed = _model(project)
    assert not _same(before, changed)
    fresh_project = _copy_project(tmp_path / "fresh")
    _snakemake(
        fresh_project, target, "--cores", "2", "--configfile", _config(fresh_project, noisier, "noisy.yaml")
    )
    assert _same(changed, _model(fresh_project))
    _snakemake(project, target, "--cores", "2", "--configfile", config, "--forcerun", "classify_train")
    assert _same(changed, _model(project))
    assert not list((project / "results").rglob("train-state"))


@pytest.mark.parametrize(
    "change, named",
    [
        (
            lambda c: c["classify"]["models"][0].update(augmnet=1),
            "unknown key classify.models[node].augmnet; classify.models[node] takes augment, name, train",
        ),
        (
            lambda c: c["classify"]["solve"].update(solver="rk5"),
            "classify[spiral/node].solve.solver is 'rk5'; choose one of euler,",
        ),
        (
            lambda c: c["classify"]["models"].append({"name": "node", "augment": 2}),
            "node appear more than once",
        ),
        (
            lambda c: c["classify"]["train"].update(batch_size=100000),
            "train.batch_size is 100000; the training set has 60",
        ),
        (
            lambda c: c["classify"]["solve"].update(steps=None),
            "classify[spiral/node].solve: solver 'rk4' has no error estimate",
        ),
        (
            lambda c: c["dynamics"]["systems"][1]["window"].update(min_length=9.0),
            "min_length (9.0) is greater",
        ),
        (lambda c: c["crossval"]["sweep"].update(case="nope"), "crossval.sweep.case is 'nope'"),
        (lambda c: c.update(container="my image.sif"), "container: 'my image.sif' does not match"),
        (
            lambda c: c["crossval"]["cases"].append(
                {"name": "x", "field": {"kind": "trained", "model": "results/nope/model.npz"}}
            ),
            "crossval case 'x' reads results/nope/model.npz, which neither exists nor is written",
        ),
        (
            lambda c: c["cnf"]["models"][0].update(trace="hutchinsn"),
            ".flow.trace is 'hutchinsn'; choose one of exact, hutchinson",
        ),
        (
            lambda c: c["sde"].update(simulation={"solver": "heun"}),
            "sde[ou].simulation.solver is 'heun'; choose one of euler, milstein",
        ),
        (
            lambda c: c["image"]["datasets"][0]["train"].update(learning_rate="fast"),
            "train.learning_rate is 'fast' (str); expected a number",
        ),
        (
            lambda c: (
                c["image"]["mnist"].update(policy="require", folder="nowhere"),
                c["image"]["datasets"].append({"name": "mnist"}),
            ),
            "image.mnist.policy is require but nowhere lacks train-images-idx3-ubyte",
        ),
        (
            lambda c: (
                c["image"].setdefault("cifar10", {}).update(policy="require", folder="nowhere"),
                c["image"]["datasets"].append({"name": "cifar10"}),
            ),
            "image.cifar10.policy is require but nowhere lacks cifar-10-binary.tar.gz and data_batch_1.bin",
        ),
        (
            lambda c: c["bench"]["work_precision"]["solvers"].update(pyode=["dopri5", "rk4"]),
            "bench.work_precision.solvers: pyode has no adaptive solver 'rk4'",
        ),
        (
            lambda c: c["bench"]["work_precision"].update(
                solvers={"pyode": [], "torchdiffeq": [], "torchode": [], "scipy": [], "scratch": []}
            ),
            "Error: config: bench.work_precision.solvers: every library's list is empty; name at least one "
            "solver\n",
        ),
        (
            lambda c: c["bench"]["work_precision"].update(rtols=[1.0e-3, 1.0e-14]),
            "Error: config: bench.work_precision: rtols include 1e-14, which is not looser than "
            "reference_tolerance (1e-14)",
        ),
        (
            lambda c: c["cnf"]["models"][0].update(densities=["moons"]),
            "Error: config: cnf.models[ffjord].densities names moons, which cnf.densities does not have; "
            "it has 8gaussians\n",
        ),
        (
            lambda c: c["image"]["datasets"][0]["data"].update(train_subset=2000),
            ".data.train_subset is 2000; the digits training set has 1347 images\n",
        ),
        (
            lambda c: c["image"]["datasets"][0]["train"].update(schedule="step", milestones=[0.5, 1]),
            ".train.milestones is [0.5, 1.0]; each must lie in [0, 1), within train.epochs (1)\n",
        ),
        (
            lambda c: c["image"]["datasets"].append({"name": "cifar10", "split": {"test_fraction": 0.5}}),
            "Error: config: image.datasets[cifar10].split has no effect: only the digits are split by pyode; "
            "cifar10 comes as its own training and test sets\n",
        ),
        (
            lambda c: c["sonode"]["models"][1].update(augment=2),
            "Error: config: sonode.models[sonode].augment is 2: it pads an ANODE's state with zero "
            "dimensions, and kind 'sonode' is not one (augment is for kind anode only)\n",
        ),
        (
            lambda c: c["latent"].update(models=None),
            "Error: config: latent.models must be a non-empty list, got None",
        ),
        (
            lambda c: c["sde"].update(processes=[]),
            "Error: config: sde.processes must be a non-empty list of entries",
        ),
        (
            lambda c: c["image"]["mnist"].update(timeout=0),
            "Error: config: image.mnist.timeout is 0.0; it must be greater than 0",
        ),
        (
            lambda c: c.update(clasify=c["classify"]),
            "Error: config: top level: unknown section 'clasify'; the sections are bench, classify, cnf,",
        ),
        pytest.param(
            lambda c: c["crossval"].update(julia="require"),
            "crossval.julia is require, so diffeqflux-gauss must run, but: Julia not found",
            marks=pytest.mark.skipif(find_julia() is not None, reason="Julia is installed here"),
        ),
    ],
    ids=[
        "unknown-key",
        "unknown-solver",
        "duplicate-name",
        "batch-too-large",
        "no-step",
        "windows",
        "sweep-case",
        "container-with-space",
        "missing-model",
        "cnf-trace",
        "sde-stratonovich-sampling",
        "string-rate",
        "mnist-required",
        "cifar10-required",
        "work-precision-solver",
        "work-precision-no-solver",
        "work-precision-tolerance",
        "cnf-model-densities",
        "image-subset-too-large",
        "image-milestones",
        "cifar10-split",
        "sonode-augment",
        "missing-list",
        "empty-entries",
        "mnist-timeout",
        "misspelt-section",
        "julia-required",
    ],
)
def test_a_bad_config_is_named_in_one_line_before_any_job(project, change, named):
    result = _snakemake(
        project, "all", "-n", "--configfile", _config(project, change, "bad.yaml"), check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert named in output, output
    assert "Traceback" not in output and 'File "' not in output
    assert not (project / "results").exists()


def test_a_bad_setting_gets_the_same_message_from_the_workflow_and_from_pyode(project, tmp_path):
    """Limits live in the settings classes only, so both paths word an error alike (after its place)."""
    rate = {"learning_rate": -0.5}
    result = _snakemake(
        project,
        "all",
        "-n",
        "--configfile",
        _config(project, lambda c: c["classify"]["train"].update(rate), "bad.yaml"),
        check=False,
    )
    workflow_line = next(line for line in (result.stdout + result.stderr).splitlines() if "Error" in line)
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"train": rate}))
    command = [sys.executable, "-m", "pyode.cli", "classify-train", "--settings", str(settings)]
    command += ["--data", str(tmp_path / "data.npz"), "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS)
    said = "train.learning_rate is -0.5; it must be greater than 0"
    assert workflow_line.endswith(f"classify[spiral/node].{said}"), workflow_line
    assert done.returncode == 2
    assert done.stderr.strip().endswith(f"{settings}: settings.{said}"), done.stderr


TOY_EXPERIMENT = '''"""A toy experiment (tests/test_workflow.py): its settings, its plan, one command."""

import dataclasses

from .. import write_json
from ._registry import Command, Experiment, defaults_help, settings_of
from ._settings import Section, option

EXPERIMENT = "toy"


@dataclasses.dataclass(frozen=True)
class Settings(Section):
    seed: int = option(0, minimum=0)
    x: float = option(3.0)


def resolve(changes: dict, where: str = "settings") -> Settings:
    return Settings().overlay(changes, where)


def plan(section: dict, *, seed: int) -> dict[str, Settings]:
    runs = {}
    for run in section["runs"]:
        changes = {"seed": seed, **{key: value for key, value in run.items() if key != "name"}}
        runs[run["name"]] = Settings().overlay(changes, f"toy[{run['name']}]")
    return runs


def _square_command(args) -> None:
    x = settings_of(resolve, args).x
    run = {"run": "r", "metrics": {"square": x * x}, "settings": {}}
    write_json(args.out, {"experiment": EXPERIMENT, "status": "ok", "runs": [run]})


DECLARATION = Experiment(
    EXPERIMENT,
    commands=(
        Command(
            "toy-square",
            _square_command,
            "square a number",
            settings=defaults_help(EXPERIMENT),
            out="metrics.json",
        ),
    ),
)
'''

TOY_RULES = """from pyode.experiments import toy

TOY = plan(toy)
for _run, _settings in TOY.items():
    settings_file(f"toy/{_run}", _settings.to_dict())
FINAL_OUTPUTS["toy"] = SUMMARY_METRICS["toy"] = [f"results/toy/{run}/metrics.json" for run in TOY]


rule toy_square:
    input:
        settings="results/settings/toy/{toy_run}.json",
    output:
        "results/toy/{toy_run}/metrics.json",
    params:
        code=CODE["toy"],
    log:
        "logs/toy/{toy_run}.log",
    wildcard_constraints:
        toy_run=alternatives(TOY),
    shell:
        "pyode toy-square --settings {input.settings} --out {output} > {log} 2>&1"
"""


def test_an_experiment_registers_once_its_module_rules_and_config_section(project):
    """A toy experiment dropped into a project copy with its own package (a module, a .smk and a config
    section, no shared file edited) has its commands in `pyode`, its defaults and its planned jobs."""
    shutil.copytree(ROOT / "pyode", project / "pyode", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "pyode" / "experiments" / "toy.py").write_text(TOY_EXPERIMENT)
    (project / "workflow" / "rules" / "toy.smk").write_text(TOY_RULES)
    config = _config(project, lambda c: c.update(toy={"runs": [{"name": "a", "x": 2.0}, {"name": "b"}]}))
    environment = dict(os.environ, PYTHONPATH=str(project))

    def pyode(*arguments: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "pyode.cli", *arguments],
            cwd=project,
            env=environment,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD_SECONDS,
            check=True,
        )
        return done.stdout

    assert "toy-square" in pyode("--help")
    assert "--settings SETTINGS" in pyode("toy-square", "--help")
    assert pyode("defaults", "toy") == "seed: 0\nx: 3.0\n"
    plan = _snakemake(project, "all", "-n", "--cores", "1", "--configfile", config)
    output = plan.stdout + plan.stderr
    table = output.split("Job stats:")[1].split("total")[0]
    assert ["toy_square", "2"] in [line.split() for line in table.splitlines()], table
    summary = output.split("rule summary:")[1].split("rule ")[0]
    assert "results/toy/a/metrics.json" in summary and "results/toy/b/metrics.json" in summary


def test_a_corrupt_input_stops_the_workflow_before_any_job_deletes_an_output(project):
    """A data file altered after its model was trained would make Snakemake rerun the training and
    delete the good model before the job fails on the data: the pre-flight stops first, naming it."""
    data = project / "results" / "classify" / "data" / "spiral.npz"
    model = project / "results" / "classify" / "spiral" / "node" / "model.npz"
    save_arrays(data, {"x": np.arange(8.0)}, {"kind": "split"})
    save_arrays(model, {"w": np.ones(3)}, {"kind": "classifier"})
    config = _config(project)
    assert _snakemake(project, "all", "-n", "--configfile", config).returncode == 0
    altered = bytearray(data.read_bytes())
    altered[len(altered) // 3] ^= 0x01
    data.write_bytes(bytes(altered))
    result = _snakemake(
        project, str(model.relative_to(project)), "--cores", "1", "--configfile", config, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error: results/classify/data/spiral.npz is truncated, altered or not a pyode array file" in output
    assert "no job was started" in output and "Traceback" not in output
    assert model.exists() and load_arrays(model)[1]["kind"] == "classifier"


def test_the_cifar10_preset_plans_and_under_require_names_what_is_missing(project):
    """The preset plans NODE, ANODE and ResNet runs (the data job would fetch into resources/cifar10);
    pointed at a folder without the data, `require` stops the workflow in one line before any job."""
    target = "results/image/cifar10/summary.md"
    planned = _snakemake(project, target, "-n", "--configfile", "config/cifar10.yaml")
    output = planned.stdout + planned.stderr
    for run in ("odenet/dopri5-checkpoint", "anode16/dopri5-checkpoint", "resnet"):
        assert f"results/image/cifar10/{run}/metrics.json" in output
    assert "results/image/data/cifar10.npz" in output
    (project / "elsewhere.yaml").write_text("image:\n  cifar10:\n    folder: ../no-cifar\n")
    refused = _snakemake(
        project, target, "-n", "--configfile", "config/cifar10.yaml", "elsewhere.yaml", check=False
    )
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert (
        "Error: config: image.cifar10.policy is require but ../no-cifar lacks cifar-10-binary.tar.gz and "
        "data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin, "
        "test_batch.bin (the archive or all six batch files will do)\n"
    ) in output, output
    assert "Traceback" not in output and not (project / "results").exists()


def test_bench_target_plans_every_measurement(project):
    """`snakemake -n bench` plans the step measurements and a work-precision job per configured problem,
    each reading its own settings file, and the table from all of them."""
    done = _snakemake(project, "bench", "-n", "--configfile", _config(project))
    output = done.stdout + done.stderr
    for rule in ("bench_steps", "bench_plots", "bench_work_precision", "bench_work_precision_table"):
        assert f"rule {rule}:" in output, rule
    for problem in ("vdp", "neural_ode", "spiral"):
        assert f"--settings results/settings/bench/work_precision_{problem}.json" in output, problem
        assert f"results/bench/work_precision_{problem}.png" in output
    assert "results/bench/work_precision.md" in output
    assert not (project / "results").exists()


def test_lint_rulegraph_and_dag_work_without_cores(project):
    lint = _snakemake(project, "--lint", check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "classify_train" in _snakemake(project, "--rulegraph").stdout
    assert "digraph" in _snakemake(project, "--dag").stdout
