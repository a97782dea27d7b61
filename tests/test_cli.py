"""The `pyode` command as a user meets it: one-line errors with exit status 2, divergence with 1,
interrupts with 130 / 143 and the state saved, corrupt files named, and resumption bit for bit."""

import ast
import importlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_GUARD_SECONDS

import pyode
from pyode import cli, code_digest, load_arrays

PACKAGE = Path(pyode.__file__).parent

TINY = {
    "data": {"points_per_class": 40},
    "field": {"width": 8, "depth": 1},
    "solve": {"solver": "rk4", "steps": 3},
    "train": {
        "steps": 30,
        "batch_size": 32,
        "learning_rate": 1e-2,
        "checkpoint_every": 10,
        "count_every": 10,
    },
}


def _pyode(*arguments, check=False, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pyode.cli", "--threads", "1", *map(str, arguments)]
    return subprocess.run(
        command, capture_output=True, text=True, check=check, timeout=HANG_GUARD_SECONDS, **kwargs
    )


def _write(path, settings):
    path.write_text(json.dumps(settings))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    _pyode(
        "classify-data",
        "--settings",
        _write(folder / "data.json", {"data": TINY["data"]}),
        "--out",
        folder / "spiral.npz",
        check=True,
    )
    return folder / "spiral.npz"


def _one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_bad_setting_is_one_line_and_exit_status_2(tmp_path, data):
    settings = _write(tmp_path / "s.json", {**TINY, "train": {**TINY["train"], "learning_rate": "fast"}})
    result = _pyode("classify-train", "--data", data, "--settings", settings, "--out", tmp_path / "run")
    assert result.returncode == 2
    line = _one_line(result)
    assert "s.json" in line and "settings.train.learning_rate is 'fast' (str); expected a number" in line
    debug = _pyode(
        "--debug", "classify-train", "--data", data, "--settings", settings, "--out", tmp_path / "run"
    )
    assert "Traceback" in debug.stderr


def test_data_that_is_not_a_split_is_named(tmp_path):
    (tmp_path / "notes.npz").write_text("not an archive")
    settings = _write(tmp_path / "s.json", TINY)
    result = _pyode(
        "classify-train", "--data", tmp_path / "notes.npz", "--settings", settings, "--out", tmp_path / "r"
    )
    assert result.returncode == 2
    assert "notes.npz is truncated, altered or not a pyode array file" in _one_line(result)


def test_compare_of_a_bad_summary_or_a_missing_folder_is_one_line_and_exit_status_2(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "summary.json").write_text("{}")
    result = _pyode("compare", tmp_path / "a", tmp_path / "a")
    assert result.returncode == 2
    assert _one_line(result) == (
        f"pyode compare: error: {tmp_path / 'a' / 'summary.json'} is not a pyode summary: "
        "runs is missing or not an array"
    )
    result = _pyode("compare", tmp_path / "nope", tmp_path / "a")
    assert result.returncode == 2
    assert _one_line(result) == f"pyode compare: error: {tmp_path / 'nope'} does not exist"


def test_a_corrupt_model_is_named_when_evaluated(tmp_path, data):
    settings = _write(tmp_path / "s.json", TINY)
    _pyode("classify-train", "--data", data, "--settings", settings, "--out", tmp_path / "run", check=True)
    model = tmp_path / "run" / "model.npz"
    content = bytearray(model.read_bytes())
    content[len(content) // 2] ^= 0x10
    model.write_bytes(bytes(content))
    result = _pyode(
        "classify-evaluate", "--run-dir", tmp_path / "run", "--data", data, "--run", "spiral/node"
    )
    assert result.returncode == 2
    assert "model.npz is truncated, altered or not a pyode array file" in _one_line(result)


@pytest.mark.parametrize(
    "change, expected, hint, kept_step",
    [
        (
            {"train": {"learning_rate": 1e30}},
            "training diverged at step 1: ",
            "for an unstable solve, raise solve.steps (now 3)",
            0,
        ),
        (
            {"solve": {"solver": "dopri5", "rtol": 1e-8, "atol": 1e-8, "max_steps": 2}},
            "training diverged at step 0: the solver failed (max_steps_reached",
            "loosen solve.rtol/atol or raise solve.max_steps (now 2)",
            None,
        ),
    ],
    ids=["learning-rate-1e30", "solver-max-steps"],
)
def test_divergence_is_one_line_exit_1_and_keeps_a_finite_state(
    tmp_path, data, change, expected, hint, kept_step
):
    """The kept state is the last whose step succeeded, and the hint names only settings of this solve."""
    settings = json.loads(json.dumps(TINY))
    for key, value in change.items():
        settings[key] = {**settings[key], **value} if key != "solve" else value
    result = _pyode(
        "classify-train",
        "--data",
        data,
        "--settings",
        _write(tmp_path / "s.json", settings),
        "--out",
        tmp_path / "run",
        "--no-progress",
    )
    assert result.returncode == 1
    line = _one_line(result)
    assert expected in line and "train.learning_rate" in line and hint in line
    assert ("solve.rtol" in line) == ("rtol" in settings["solve"])
    checkpoint = tmp_path / "run" / "train-state" / "checkpoint.npz"
    if kept_step is None:
        assert "no state is kept" in line and not checkpoint.exists()
    else:
        arrays, metadata = load_arrays(checkpoint)
        assert metadata["step"] == kept_step and f"before step {kept_step}" in line
        assert all(np.all(np.isfinite(a)) for a in arrays.values())
    assert not (tmp_path / "run" / "model.npz").exists()


def _model(run) -> dict:
    arrays, _ = load_arrays(run / "model.npz")
    return arrays


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupt_outside_training_ends_the_command_even_inside_a_gc_callback(signum):
    """Outside the training loop a signal ends the command at once in one line, 128 + signum, even
    when it arrives during a garbage-collection callback (as during JAX's import), which swallows an
    exception raised from the handler and would let the command run on."""
    program = (
        "import gc, os, signal, time\n"
        "from pyode.cli import _stop_at_once\n"
        f"signal.signal({int(signum)}, _stop_at_once('pyode test'))\n"
        f"gc.callbacks.append(lambda *_: os.kill(os.getpid(), {int(signum)}))\n"
        "gc.collect()\n"
        "time.sleep(2)\n"
        "print('ran on')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=HANG_GUARD_SECONDS
    )
    assert done.returncode == 128 + signum and "ran on" not in done.stdout
    assert done.stderr.strip() == f"pyode test: interrupted by {signal.Signals(signum).name}"


@pytest.mark.slow
def test_random_interrupts_resume_to_the_uninterrupted_parameters(tmp_path, data):
    """SIGTERM and SIGINT at 10+ random moments, the first during the first compiled step."""
    settings = json.loads(json.dumps(TINY))
    settings["train"].update(steps=3000, checkpoint_every=500, count_every=50)
    settings = _write(tmp_path / "s.json", settings)
    arguments = ["classify-train", "--data", data, "--settings", settings, "--no-progress"]
    _pyode(*arguments, "--out", tmp_path / "straight", check=True)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "pyode.cli", "--threads", "1", *map(str, arguments), "--out", str(run)]
    rng = random.Random(0)
    interrupts, first_step_caught, first_delay = 0, False, 0.3
    while not (run / "model.npz").exists():
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        if not first_step_caught:
            while not (run / "train-state").exists() and process.poll() is None:
                time.sleep(0.01)
            delay = first_delay
        else:
            delay = rng.uniform(0.2, 4.0)
        time.sleep(delay)
        signum = rng.choice([signal.SIGTERM, signal.SIGINT]) if interrupts < 12 else None
        if signum is not None and process.poll() is None:
            process.send_signal(signum)
        _, stderr = process.communicate(timeout=HANG_GUARD_SECONDS)
        if process.returncode == 0:
            break
        assert process.returncode == 128 + signum, stderr
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
        interrupts += 1
        if not first_step_caught:  # aim at the first step (compiling): a little later while it lands before
            _, metadata = load_arrays(run / "train-state" / "checkpoint.npz")
            assert metadata["step"] <= 1, f"the first interrupt came after step {metadata['step']}"
            first_step_caught, first_delay = metadata["step"] == 1, first_delay + 0.3
    assert interrupts >= 10
    straight, resumed = _model(tmp_path / "straight"), _model(run)
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == list(range(3000))
    assert not (run / "train-state").exists()


@pytest.mark.slow
def test_the_thread_count_does_not_change_a_trained_model(tmp_path, data):
    """Why a run's identity leaves out the thread count: one XLA thread or two, the same parameters
    (a field wide enough, and batches large enough, that XLA's CPU kernels could split the work)."""
    settings = json.loads(json.dumps(TINY))
    settings["field"] = {"width": 64, "depth": 2}
    settings["train"].update(steps=20, batch_size=64)
    path = _write(tmp_path / "s.json", settings)
    models = []
    for threads in ("1", "2"):
        command = [sys.executable, "-m", "pyode.cli", "--threads", threads, "classify-train", "--data", data]
        out = tmp_path / f"threads-{threads}"
        subprocess.run(
            [*map(str, command), "--settings", str(path), "--out", str(out), "--no-progress"],
            check=True,
            capture_output=True,
            timeout=HANG_GUARD_SECONDS,
        )
        models.append(_model(out))
    assert models[0].keys() == models[1].keys()
    assert all(np.array_equal(models[0][k], models[1][k]) for k in models[0])


def test_a_model_and_its_training_state_record_the_code_that_made_them(tmp_path, data):
    _pyode(
        "classify-train",
        "--data",
        data,
        "--settings",
        _write(tmp_path / "s.json", TINY),
        "--out",
        tmp_path / "run",
        "--no-progress",
        check=True,
    )
    _, metadata = load_arrays(tmp_path / "run" / "model.npz")
    code = metadata["identity"]["code"]
    assert code["digest"] == code_digest("classify") and code["experiment"] == "classify"
    assert {"pyode", "commit", "dirty", "jax", "diffrax", "equinox", "optax", "torch"} <= set(code)
    assert metadata["identity"]["x64"] is False


USER_ERRORS = {
    "pyode._errors": ["UserError", "MissingFile"],
    "pyode._files": ["CorruptFile"],
    "pyode.experiments._settings": ["SettingsError"],
    "pyode.data._images": ["DataUnavailable", "MNISTUnavailable", "CIFAR10Unavailable"],
    "pyode.reference._base": ["BackendUnavailable"],
    "pyode.experiments.claims": ["LedgerError"],
}
"""Every error class pyode defines for a user to act on, by module."""

OTHER_ERRORS = {"TrainingInterrupted", "TrainingDiverged", "MethodUnavailable", "Unreadable"}
"""Error classes that are not user errors: an interrupt (exit 128 + signal), a divergence (exit 1),
a benchmark method that cannot run (reported as skipped, never raised to the command), and a claim's
metric these results do not give (its verdict is "not run", never raised to the command)."""


def _error_classes_defined() -> set[str]:
    """Names of the classes in pyode's sources whose bases name an Error, Exception or Unavailable."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base) for base in node.bases]
                if any(base.endswith(("Error", "Exception", "Unavailable", "CorruptFile")) for base in bases):
                    found.add(node.name)
    return found


def test_every_user_error_derives_from_the_base_and_ends_in_one_line_with_status_2(monkeypatch, capsys):
    listed = {name for names in USER_ERRORS.values() for name in names}
    assert _error_classes_defined() == listed | OTHER_ERRORS
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)
    for module, names in USER_ERRORS.items():
        for name in names:
            error = getattr(importlib.import_module(module), name)
            assert issubclass(error, pyode.UserError), name

            def fail(args, error=error):
                raise error(f"{error.__name__} names what to change")

            monkeypatch.setattr(cli, "defaults", fail)
            with pytest.raises(SystemExit) as stop:
                cli.main(["defaults", "classify"])
            assert stop.value.code == 2, name
            assert capsys.readouterr().err == f"pyode defaults: error: {name} names what to change\n"
