"""Training: resumption after an interruption, the non-finite-loss guard, the classifier run."""

import json
import os
import signal
import subprocess
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tree_allclose

from pyode._classify import load_classifier, resolve_settings, train_classifier
from pyode._train import NonFiniteLossError, TrainOptions, fit, read_history, start_state_dir
from pyode.data import make_split
from pyode.models import make_classifier

TINY = {
    "field": {"width": 8},
    "solve": {"solver": "rk4", "steps": 3},
    "train": {"steps": 30, "batch_size": 32, "learning_rate": 1e-2, "checkpoint_every": 10},
}


def _quadratic_problem():
    model = make_classifier(
        2, width=4, solve_options={"solver": "euler", "steps": 2}, key=jax.random.PRNGKey(0)
    )

    def loss(m, batch):
        logits, solution = m(batch)
        return jnp.mean(logits**2), {"nfe_forward": solution.nfe_forward}

    def batch_at(step):
        return jnp.asarray(np.random.default_rng([1, step]).normal(size=(8, 2)))

    return model, loss, batch_at


class Crash(RuntimeError):
    pass


def test_interrupted_run_resumes_to_the_same_parameters(tmp_path):
    model, loss, batch_at = _quadratic_problem()
    options = TrainOptions(steps=25, learning_rate=1e-2, checkpoint_every=10, progress=False)
    uninterrupted = fit(model, loss, batch_at, options, tmp_path / "straight")

    def crashing_batch_at(step):
        if step == 17:
            raise Crash("power cut")
        return batch_at(step)

    with pytest.raises(Crash):
        fit(model, loss, crashing_batch_at, options, tmp_path / "resumed")
    assert len(read_history(tmp_path / "resumed" / "history.jsonl")) == 17
    resumed = fit(model, loss, batch_at, options, tmp_path / "resumed")
    history = read_history(tmp_path / "resumed" / "history.jsonl")
    assert [r["step"] for r in history] == list(range(25))
    assert tree_allclose(eqx.filter(resumed, eqx.is_array), eqx.filter(uninterrupted, eqx.is_array), rtol=0)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    model, loss, batch_at = _quadratic_problem()

    def poisoned_batch_at(step):
        return batch_at(step) * (jnp.nan if step == 12 else 1.0)

    options = TrainOptions(steps=20, learning_rate=1e-2, checkpoint_every=5, progress=False)
    with pytest.raises(NonFiniteLossError, match="at step 12"):
        fit(model, loss, poisoned_batch_at, options, tmp_path)
    history = read_history(tmp_path / "history.jsonl")
    assert len(history) == 12 and all(np.isfinite(r["loss"]) for r in history)
    saved = eqx.tree_deserialise_leaves(
        tmp_path / "checkpoint.eqx", (eqx.filter(model, eqx.is_inexact_array), None, 0)
    )
    assert saved is not None


def test_classifier_training_writes_model_and_history(tmp_path):
    make_split("spiral", points_per_class=40, seed=1).save(tmp_path / "spiral.npz")
    train_classifier(tmp_path / "spiral.npz", TINY, tmp_path / "run", progress=False)
    history = read_history(tmp_path / "run" / "history.jsonl")
    assert len(history) == 30
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(r["nfe_forward"] == 12 and r["nfe_backward"] == 12 for r in history)
    model = load_classifier(tmp_path / "run" / "model.eqx")
    assert json.loads((tmp_path / "run" / "model.json").read_text())["settings"]["field"]["width"] == 8
    logits, _ = model(jnp.zeros((3, 2), jnp.float32))
    assert logits.shape == (3,)


def test_unknown_setting_is_named():
    with pytest.raises(ValueError, match="'widht'"):
        resolve_settings({"field": {"widht": 3}})


@pytest.mark.slow
def test_sigterm_midway_then_rerun_resumes(tmp_path):
    """A real interruption: SIGTERM to the `pyode classify-train` process, then the same command again."""
    make_split("spiral", points_per_class=40, seed=1).save(tmp_path / "spiral.npz")
    settings = json.dumps({**TINY, "train": {**TINY["train"], "steps": 3000, "checkpoint_every": 1000}})
    command = [sys.executable, "-m", "pyode.cli", "--threads", "1", "classify-train", "--no-progress"]
    command += [
        "--data",
        str(tmp_path / "spiral.npz"),
        "--settings",
        settings,
        "--out",
        str(tmp_path / "run"),
    ]
    process = subprocess.Popen(command)
    history_path = tmp_path / "run" / "train-state" / "history.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not history_path.exists() or len(read_history(history_path)) < 50):
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    stopped_at = len(read_history(history_path))
    assert 50 <= stopped_at < 3000
    assert os.path.exists(tmp_path / "run" / "train-state" / "checkpoint.eqx")
    subprocess.run(command, check=True)
    history = read_history(tmp_path / "run" / "history.jsonl")
    assert [r["step"] for r in history] == list(range(3000))


def test_a_checkpoint_is_resumed_only_by_the_run_that_wrote_it(tmp_path):
    state = start_state_dir(tmp_path / "state", {"steps": 30})
    (state / "checkpoint.eqx").write_bytes(b"from the first run")
    assert (start_state_dir(tmp_path / "state", {"steps": 30}) / "checkpoint.eqx").exists()
    assert not (start_state_dir(tmp_path / "state", {"steps": 60}) / "checkpoint.eqx").exists()
