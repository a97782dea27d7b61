"""The training loop: resume, run identity, interrupts, integrity of saved state, divergence, counting."""

import math
import os
import re
import signal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tree_allclose

import pyode.train
from pyode import CorruptFile, load_arrays, save_arrays
from pyode.models import make_classifier
from pyode.train import (
    OptaxStepper,
    TrainingDiverged,
    TrainingInterrupted,
    TrainOptions,
    TrainState,
    fit,
    load_state,
    make_optimizer,
    run_identity,
    save_state,
)

IDENTITY = "a" * 64


def _problem(solve_options=None, *, learning_rate=1e-2):
    model = make_classifier(
        2,
        width=4,
        solve_options=solve_options or {"solver": "euler", "steps": 2, "throw": False},
        key=jax.random.PRNGKey(0),
    )

    def loss(m, batch):
        logits, solution = m(batch)
        return jnp.mean(logits**2), {"nfe_forward": solution.nfe_forward, "solver_status": solution.status}

    def batch_at(step):
        return jnp.asarray(np.random.default_rng([1, step]).normal(size=(8, 2)))

    options = TrainOptions(
        steps=25, learning_rate=learning_rate, checkpoint_every=10, count_every=5, progress=False
    )
    return OptaxStepper(model, loss, make_optimizer(options)), batch_at, options


def _params(state):
    return eqx.filter(state.params, eqx.is_array)


class Crash(RuntimeError):
    pass


def _crashing(batch_at, at):
    def crashing(step):
        if step == at:
            raise Crash("power cut")
        return batch_at(step)

    return crashing


def test_an_interrupted_run_resumes_to_the_same_parameters_and_history(tmp_path):
    stepper, batch_at, options = _problem()
    straight = fit(stepper, batch_at, options, tmp_path / "straight", identity=IDENTITY)
    with pytest.raises(Crash):
        fit(stepper, _crashing(batch_at, 17), options, tmp_path / "resumed", identity=IDENTITY)
    resumed = fit(stepper, batch_at, options, tmp_path / "resumed", identity=IDENTITY)
    assert [r["step"] for r in resumed.history] == list(range(25))
    assert tree_allclose(_params(resumed), _params(straight), rtol=0)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]


def test_evaluations_are_counted_on_every_count_every_th_step_only(tmp_path):
    stepper, batch_at, options = _problem()
    state = fit(stepper, batch_at, options, tmp_path, identity=IDENTITY)
    counted = [r["step"] for r in state.history if "nfe_backward" in r]
    assert counted == [0, 5, 10, 15, 20]
    assert all(state.history[s]["nfe_backward"] == 2 for s in counted)
    assert all(r["nfe_forward"] == 2 for r in state.history)


def test_a_state_of_another_identity_is_discarded_with_a_notice(tmp_path, capsys):
    stepper, batch_at, options = _problem()
    with pytest.raises(Crash):
        fit(stepper, _crashing(batch_at, 12), options, tmp_path, identity=IDENTITY)
    fresh = fit(stepper, batch_at, options, tmp_path / "fresh", identity="b" * 64)
    other = fit(stepper, batch_at, options, tmp_path, identity="b" * 64)
    assert "belongs to a run with other settings or inputs" in capsys.readouterr().err
    assert tree_allclose(_params(other), _params(fresh), rtol=0)


def _checkpoint_after_crash(tmp_path, at=23):
    stepper, batch_at, options = _problem()
    with pytest.raises(Crash):
        fit(stepper, _crashing(batch_at, at), options, tmp_path / "run", identity=IDENTITY)
    straight = fit(stepper, batch_at, options, tmp_path / "straight", identity=IDENTITY)
    return stepper, batch_at, options, tmp_path / "run", straight


def _flip_byte(path, where=0.5):
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        lambda p: _flip_byte(p, 0.3),
        lambda p: _flip_byte(p, 0.97),
    ],
    ids=["truncated", "flipped-array-byte", "flipped-manifest-byte"],
)
def test_a_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys, damage):
    stepper, batch_at, options, state_dir, straight = _checkpoint_after_crash(tmp_path)
    damage(state_dir / "checkpoint.npz")
    resumed = fit(stepper, batch_at, options, state_dir, identity=IDENTITY)
    message = capsys.readouterr().err
    assert "checkpoint.npz" in message and "trying the previous checkpoint" in message
    assert len(message.strip().splitlines()) == 1
    assert tree_allclose(_params(resumed), _params(straight), rtol=0)


def test_two_corrupt_checkpoints_start_afresh(tmp_path, capsys):
    stepper, batch_at, options, state_dir, straight = _checkpoint_after_crash(tmp_path)
    for name in ("checkpoint.npz", "checkpoint.previous.npz"):
        _flip_byte(state_dir / name)
    resumed = fit(stepper, batch_at, options, state_dir, identity=IDENTITY)
    assert "starting afresh" in capsys.readouterr().err
    assert [r["step"] for r in resumed.history] == list(range(25))
    assert tree_allclose(_params(resumed), _params(straight), rtol=0)


def test_a_step_counter_that_disagrees_with_its_history_is_refused(tmp_path, capsys):
    stepper, batch_at, options, state_dir, straight = _checkpoint_after_crash(tmp_path)
    arrays, metadata = load_arrays(state_dir / "checkpoint.npz")
    save_arrays(state_dir / "checkpoint.npz", arrays, {**metadata, "step": 5})
    resumed = fit(stepper, batch_at, options, state_dir, identity=IDENTITY)
    assert "does not match its history" in capsys.readouterr().err
    assert tree_allclose(_params(resumed), _params(straight), rtol=0)


def test_altered_arrays_are_caught_by_their_checksums(tmp_path):
    save_arrays(tmp_path / "a.npz", {"x": np.arange(4.0)}, {"kind": "test"})
    data = (tmp_path / "a.npz").read_bytes()
    start = data.index(np.arange(4.0).tobytes())
    altered = bytearray(data)
    altered[start + 9] ^= 0x01
    (tmp_path / "a.npz").write_bytes(bytes(altered))
    with pytest.raises(CorruptFile, match="a.npz"):
        load_arrays(tmp_path / "a.npz")


def test_a_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_state(tmp_path):
    stepper, batch_at, options = _problem()

    def poisoned(step):
        return batch_at(step) * (jnp.nan if step == 12 else 1.0)

    with pytest.raises(TrainingDiverged, match="at step 12: the loss became nan") as error:
        fit(stepper, poisoned, options, tmp_path, identity=IDENTITY)
    assert "learning_rate" in str(error.value) and "kept the state before step 11" in str(error.value)
    arrays, metadata = load_arrays(tmp_path / "checkpoint.npz")
    assert metadata["step"] == 11 and len(metadata["history"]) == 11
    assert all(np.all(np.isfinite(a)) for a in arrays.values())


def test_a_huge_learning_rate_keeps_the_state_whose_loss_was_finite_and_resuming_evaluates_it(tmp_path):
    """The kept state is the one before the failing update: resumed, it evaluates to the finite loss
    that the message names, not to the blown-up one."""
    stepper, batch_at, options = _problem(learning_rate=1e30)
    with pytest.raises(TrainingDiverged, match=r"at step 1: .* train.learning_rate \(now 1e\+30\)") as error:
        fit(stepper, batch_at, options, tmp_path, identity=IDENTITY)
    match = re.search(r"kept the state before step (\d+), .* whose loss was (\S+), in", str(error.value))
    step, loss = int(match[1]), float(match[2])
    assert step == 0
    params, opt_state = stepper.init()
    kept = load_state(tmp_path, TrainState(0, params, opt_state), IDENTITY)
    assert kept.step == step and kept.history == []
    resumed_loss = stepper.step(kept.params, kept.opt_state, batch_at(kept.step)).loss
    assert math.isfinite(resumed_loss) and resumed_loss == pytest.approx(loss, rel=1e-5)
    assert tree_allclose(_params(kept), _params(TrainState(0, params, opt_state)), rtol=0)


def test_a_failure_at_the_first_step_keeps_no_state(tmp_path):
    stepper, batch_at, options = _problem()
    with pytest.raises(TrainingDiverged, match="no step succeeded, so no state is kept"):
        fit(stepper, lambda step: batch_at(step) * jnp.nan, options, tmp_path, identity=IDENTITY)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_a_failed_solve_stops_training_naming_the_solver(tmp_path):
    stepper, batch_at, options = _problem(
        {"solver": "dopri5", "rtol": 1e-12, "atol": 1e-12, "max_steps": 2, "throw": False}
    )
    with pytest.raises(TrainingDiverged, match="at step 0: the solver failed .*max_steps_reached") as error:
        fit(stepper, batch_at, options, tmp_path, identity=IDENTITY)
    assert "no step succeeded" in str(error.value)


def test_a_loss_that_blows_up_stops_training(tmp_path):
    stepper, batch_at, options = _problem()

    def growing(step):
        return batch_at(step) * (1.0 if step < 8 else 10.0 ** (step - 6))

    with pytest.raises(TrainingDiverged, match="divergence_factor"):
        fit(stepper, growing, options, tmp_path, identity=IDENTITY)
    _, metadata = load_arrays(tmp_path / "checkpoint.npz")
    assert 8 <= metadata["step"] < 25


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_after_the_current_step_with_its_state_saved(tmp_path, signum):
    stepper, batch_at, options = _problem()
    straight = fit(stepper, batch_at, options, tmp_path / "straight", identity=IDENTITY)

    def signalling(step):
        if step == 7:
            os.kill(os.getpid(), signum)
        return batch_at(step)

    with pytest.raises(
        TrainingInterrupted, match=f"{signal.Signals(signum).name} after step 8 of 25"
    ) as stop:
        fit(stepper, signalling, options, tmp_path / "run", identity=IDENTITY)
    assert stop.value.signum == signum
    _, metadata = load_arrays(tmp_path / "run" / "checkpoint.npz")
    assert metadata["step"] == 8
    resumed = fit(stepper, batch_at, options, tmp_path / "run", identity=IDENTITY)
    assert tree_allclose(_params(resumed), _params(straight), rtol=0)
    assert signal.getsignal(signal.SIGTERM) is not None


def test_a_run_identity_changes_with_the_code_and_precision_but_not_the_commit():
    settings, code = {"steps": 3}, {"digest": "1" * 64, "jax": "0.10.2", "commit": "abc", "dirty": False}
    base = run_identity(settings, code=code)["digest"]
    assert run_identity(settings, code={**code, "commit": "def", "dirty": True})["digest"] == base
    assert run_identity(settings, code={**code, "digest": "2" * 64})["digest"] != base
    assert run_identity(settings, code={**code, "jax": "0.11.0"})["digest"] != base
    with jax.enable_x64(not jax.config.jax_enable_x64):
        assert run_identity(settings, code=code)["digest"] != base


def test_a_checkpoint_save_never_leaves_a_moment_without_a_newest_checkpoint(tmp_path, monkeypatch):
    """While a new checkpoint is written, the newest stays in place and the previous already holds it."""
    stepper, _, _ = _problem()
    params, opt_state = stepper.init()
    save_state(tmp_path, TrainState(0, params, opt_state), IDENTITY)
    first = (tmp_path / "checkpoint.npz").read_bytes()
    seen = []

    def watching(path, arrays, metadata):
        seen.append(
            ((tmp_path / "checkpoint.npz").read_bytes(), (tmp_path / "checkpoint.previous.npz").read_bytes())
        )
        return save_arrays(path, arrays, metadata)

    monkeypatch.setattr(pyode.train._state, "save_arrays", watching)
    save_state(tmp_path, TrainState(0, params, opt_state, [], [{"note": 1}]), IDENTITY)
    assert seen == [(first, first)]
    assert (tmp_path / "checkpoint.previous.npz").read_bytes() == first
    assert (tmp_path / "checkpoint.npz").read_bytes() != first
