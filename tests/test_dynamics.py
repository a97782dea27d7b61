"""The dynamics experiment: generators, window sampling, settings, short real trainings, evaluation."""

import json
import os
import re
import signal
import zipfile

import equinox as eqx
import jax
import numpy as np
import pytest
from scipy.linalg import expm

import pyode
from pyode.data import (
    DYNAMICS_GENERATORS,
    Trajectories,
    check_trajectory_options,
    make_trajectories,
    sample_windows,
)
from pyode.data._dynamics import LINEAR_SPIRAL_MATRIX, LINEAR_SPIRAL_START
from pyode.experiments import SettingsError, dynamics, read_history
from pyode.experiments._common import run_metrics
from pyode.models import LinearField, MLPField, load_model
from pyode.train import TrainingInterrupted

SMALL_DATA = {
    "vdp": {"trajectories": 2, "observations": 30, "t1": 3.0, "extrapolation_points": 10},
    "linear_spiral": {"observations": 40, "t1": 6.0, "extrapolation_points": 10},
    "nn_spiral": {"observations": 40, "t1": 6.0, "extrapolation_points": 10},
    "regression_ab": {"pairs": 3, "extrapolation_points": 5},
}


def _short_run(system: str) -> dict:
    """The config entry of a short run of `system` (its default fits)."""
    return {
        "name": system,
        "data": SMALL_DATA[system],
        "field": {"width": 8},
        "window": {"batch": 2, "max_points": 8} if system != "regression_ab" else {"batch": 3},
        "train": {"steps": 4, "checkpoint_every": 2, "schedule": "constant"},
        "snapshots": 2,
    }


def _first_fit(system: str) -> tuple[str, dynamics.Settings]:
    """(run name, settings) of the first default fit of a short run of `system`."""
    runs = dynamics.plan({"systems": [_short_run(system)]}, seed=0)
    return next(iter(runs.items()))


@pytest.mark.parametrize("system", list(DYNAMICS_GENERATORS))
def test_generators_shapes_and_determinism(system):
    data = make_trajectories(system, seed=3, **SMALL_DATA[system])
    count, times = data.ts.shape
    assert data.ys.shape == data.ys_true.shape == (count, times, 2)
    assert data.initial_states.shape == (count, 2)
    assert data.extrapolation_ys_true.shape == data.extrapolation_ts.shape + (2,)
    assert data.ys.dtype == np.float64
    assert np.all(data.ts[:, 0] == 0) and np.all(np.diff(data.ts, axis=1) >= 0)
    assert np.all(data.extrapolation_ts.min(axis=1) > data.ts[:, -1])
    np.testing.assert_allclose(data.ys_true[:, 0], data.initial_states)
    again = make_trajectories(system, seed=3, **SMALL_DATA[system])
    np.testing.assert_array_equal(data.ys, again.ys)
    other = make_trajectories(system, seed=4, **SMALL_DATA[system])
    assert not np.array_equal(data.ys, other.ys)


def test_noise_level_and_truth_of_the_linear_spiral():
    data = make_trajectories("linear_spiral", observations=2000, noise=0.05, seed=1)
    assert np.std(data.ys - data.ys_true) == pytest.approx(0.05, rel=0.05)
    exact = np.stack([expm(LINEAR_SPIRAL_MATRIX * t) @ LINEAR_SPIRAL_START for t in data.ts[0]])
    np.testing.assert_allclose(data.ys_true[0], exact, atol=1e-8)


def test_regression_pairs_are_rotations():
    data = make_trajectories("regression_ab", pairs=5, rotation=0.7, noise=0.0, seed=2)
    rotation = np.array([[np.cos(0.7), -np.sin(0.7)], [np.sin(0.7), np.cos(0.7)]])
    np.testing.assert_allclose(data.ys[:, 1], data.ys[:, 0] @ rotation.T, atol=1e-8)


def test_unknown_generator_option_is_named():
    with pytest.raises(ValueError, match="wiggle"):
        make_trajectories("vdp", wiggle=1)
    with pytest.raises(ValueError, match="wiggle.*'vdp'"):
        check_trajectory_options("vdp", {"wiggle": 1})
    with pytest.raises(ValueError, match="unknown system 'pendulum'"):
        check_trajectory_options("pendulum", {})
    check_trajectory_options("vdp", {"mu": 2.0})
    with pytest.raises(SettingsError, match=r"settings\.data: .*wiggle"):
        dynamics.resolve({"system": "vdp", "data": {"wiggle": 1}})
    with pytest.raises(SettingsError, match=r"settings\.data: .*wiggle"):
        dynamics.resolve_data({"system": "vdp", "data": {"wiggle": 1}})
    with pytest.raises(SettingsError, match=r"settings\.train\.lerning_rate"):
        dynamics.resolve({"system": "nn_spiral", "train": {"lerning_rate": 1.0}})


def test_settings_apply_the_system_defaults_then_the_changes():
    vdp = dynamics.resolve({"system": "vdp", "train": {"steps": 5}})
    assert vdp.field.width == 64 and vdp.window.batch == 32 and vdp.train.steps == 5
    assert dynamics.resolve({"system": "regression_ab"}).window.max_points == 2
    spiral = dynamics.resolve({"system": "linear_spiral", "fit": {"name": "lin", "field": "linear"}})
    assert spiral.field.width == dynamics.Settings().field.width and spiral.fit.field == "linear"
    assert spiral.model() == ("linear_field", {"dim": 2})
    assert dynamics.resolve(spiral.to_dict()) == spiral  # what a run records resolves back to itself
    with pytest.raises(
        SettingsError, match=r"settings\.fit\.field is 'quadratic'; choose one of linear, mlp"
    ):
        dynamics.resolve({"fit": {"field": "quadratic"}})
    with pytest.raises(SettingsError, match="min_length .* is greater than max_length"):
        dynamics.resolve({"window": {"min_length": 3.0, "max_length": 2.0}})
    with pytest.raises(SettingsError, match=r"settings\.system is 'pendulum'"):
        dynamics.resolve({"system": "pendulum"})
    with pytest.raises(SettingsError, match="autonomous"):
        dynamics.resolve({"field": {"time_input": True}})


def test_plan_gives_one_run_per_fit():
    runs = dynamics.plan(
        {"systems": [{"name": "linear_spiral"}, {"name": "regression_ab"}, {"name": "vdp"}]}, seed=7
    )
    assert list(runs) == [
        "linear_spiral/linear",
        "linear_spiral/mlp",
        "regression_ab/one_pair",
        "regression_ab/pairs",
        "vdp/mlp",
    ]
    assert runs["linear_spiral/linear"].fit.field == "linear" and runs["linear_spiral/mlp"].fit.field == "mlp"
    assert (
        runs["regression_ab/one_pair"].fit.trajectories == 1
        and runs["regression_ab/pairs"].fit.trajectories is None
    )
    assert all(settings.seed == 7 for settings in runs.values())
    assert runs["vdp/mlp"].train.steps == dynamics.SYSTEM_DEFAULTS["vdp"]["train"]["steps"]
    custom = dynamics.plan(
        {"systems": [{"name": "vdp", "fits": [{"name": "lin", "field": "linear"}]}]}, seed=0
    )
    assert list(custom) == ["vdp/lin"]
    twice = [{"name": "a", "field": "mlp"}, {"name": "a", "field": "linear"}]
    with pytest.raises(SettingsError, match="the name.*a appear more than once"):
        dynamics.plan({"systems": [{"name": "vdp", "fits": twice}]}, seed=0)
    with pytest.raises(SettingsError, match=r"dynamics\[vdp/mlp\]\.window\.batch"):
        dynamics.plan({"systems": [{"name": "vdp", "window": {"batch": 0}}]}, seed=0)


def test_save_and_load_round_trip(tmp_path):
    data = make_trajectories("vdp", seed=0, **SMALL_DATA["vdp"])
    data.save(tmp_path / "data.npz")
    loaded = Trajectories.load(tmp_path / "data.npz")
    assert loaded.system == "vdp" and loaded.settings == data.settings and loaded.noise == data.noise
    for name in ("initial_states", "ts", "ys", "ys_true", "extrapolation_ts", "extrapolation_ys_true"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(data, name))


def _flipped(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupted_trajectories_file_is_refused(tmp_path):
    path = tmp_path / "data.npz"
    make_trajectories("linear_spiral", seed=0, **SMALL_DATA["linear_spiral"]).save(path)
    good = path.read_bytes()
    with zipfile.ZipFile(path) as archive:  # the middle of each stored array (and of the metadata)
        offsets = [info.header_offset for info in archive.infolist()]
        sizes = [info.compress_size for info in archive.infolist()]
    middles = []
    for offset, size in zip(offsets, sizes):  # past the local header, its name and its extra field
        name_length, extra_length = np.frombuffer(good[offset + 26 : offset + 30], "<u2")
        middles.append(offset + 30 + int(name_length) + int(extra_length) + size // 2)
    assert len(middles) == 7
    for offset in [len(good) // 2, *middles]:
        path.write_bytes(good)
        _flipped(path, offset)
        with pytest.raises(pyode.CorruptFile, match=re.escape(str(path))):
            Trajectories.load(path)
    path.write_bytes(good[:-100])
    with pytest.raises(pyode.CorruptFile, match=re.escape(str(path))):
        Trajectories.load(path)
    pyode.save_arrays(path, {"ts": np.zeros(3)}, {"kind": "split"})
    with pytest.raises(pyode.CorruptFile, match="does not hold trajectories"):
        Trajectories.load(path)


def test_windows_are_sorted_inside_the_interval_and_bounded():
    data = make_trajectories("linear_spiral", seed=0)
    windows = sample_windows(
        data, np.random.default_rng(5), batch=64, min_length=1.0, max_length=5.0, max_points=32
    )
    assert windows.ts.shape == (64, 32) and windows.ys.shape == (64, 32, 2)
    assert np.all(np.diff(windows.ts, axis=1) >= 0)
    assert np.all(windows.mask.sum(axis=1) >= 2)
    for ts, ys, mask in zip(windows.ts, windows.ys, windows.mask):
        real = mask == 1
        assert np.all(real[: real.sum()])
        taken = ts[real]
        assert taken[0] >= 0 and taken[-1] <= data.ts[0, -1]
        assert taken[-1] - taken[0] <= 5.0
        assert np.all(np.diff(taken) > 0)
        for t, y in zip(taken, ys[real]):
            np.testing.assert_array_equal(y, data.ys[0, data.ts[0] == t][0])
        assert np.all(ts[~real] == taken[-1])
    same = sample_windows(
        data, np.random.default_rng(5), batch=64, min_length=1.0, max_length=5.0, max_points=32
    )
    np.testing.assert_array_equal(same.ts, windows.ts)


def test_regression_windows_hold_whole_pairs():
    data = make_trajectories("regression_ab", pairs=4, seed=0)
    windows = sample_windows(
        data, np.random.default_rng(0), batch=4, min_length=1.0, max_length=1.0, max_points=2
    )
    np.testing.assert_array_equal(windows.ts, np.tile([0.0, 1.0], (4, 1)))
    assert sorted(map(tuple, windows.ys[:, 0])) == sorted(map(tuple, data.ys[:, 0]))


def test_snapshot_steps():
    assert dynamics.snapshot_steps(dynamics.resolve({"train": {"steps": 10}, "snapshots": 4})) == [
        0,
        3,
        6,
        9,
        10,
    ]
    assert dynamics.snapshot_steps(dynamics.resolve({"train": {"steps": 3}, "snapshots": 20})) == [0, 1, 2, 3]


def test_training_refuses_data_it_does_not_fit(tmp_path):
    _, settings = _first_fit("regression_ab")
    dynamics.make_data(
        dynamics.resolve_data({"system": "vdp", "data": SMALL_DATA["vdp"]}), tmp_path / "vdp.npz"
    )
    with pytest.raises(SettingsError, match="holds 'vdp' data; the settings are for 'regression_ab'"):
        dynamics.train(tmp_path / "vdp.npz", settings, tmp_path / "run", progress=False)
    dynamics.make_data(settings.part(dynamics.DataSettings), tmp_path / "pairs.npz")
    greedy = dynamics.resolve({**settings.to_dict(), "fit": {"name": "many", "trajectories": 4}})
    with pytest.raises(SettingsError, match="asks for 4 trajectories; the data hold 3"):
        dynamics.train(tmp_path / "pairs.npz", greedy, tmp_path / "run", progress=False)


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """Every system's data and a 4-step training of its first fit (linear_spiral: the linear one)."""
    runs = {}
    for system in DYNAMICS_GENERATORS:
        folder = tmp_path_factory.mktemp(system)
        name, settings = _first_fit(system)
        dynamics.make_data(settings.part(dynamics.DataSettings), folder / "data.npz")
        fit_name = settings.fit.name
        dynamics.train(folder / "data.npz", settings, folder / fit_name, progress=False)
        runs[system] = (folder, settings, fit_name)
    return runs


@pytest.mark.parametrize("system", list(DYNAMICS_GENERATORS))
def test_short_training_run(system, short_runs):
    folder, settings, fit_name = short_runs[system]
    out = folder / fit_name
    field, metadata = load_model(out / "model.npz")
    assert metadata["experiment"] == "dynamics" and metadata["settings"] == settings.to_dict()
    assert metadata["settings"]["system"] == system and metadata["settings"]["fit"]["name"] == fit_name
    assert metadata["identity"]["inputs"]["data"] == pyode.file_digest(folder / "data.npz")
    assert isinstance(field, LinearField if settings.fit.field == "linear" else MLPField)
    leaves = jax.tree_util.tree_leaves(eqx.filter(field, eqx.is_array))
    assert all(leaf.dtype == np.float32 for leaf in leaves)
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == [0, 1, 2, 3]
    assert all(np.isfinite(r["loss"]) and r["nfe_forward"] > 0 and r["seconds"] > 0 for r in history)
    assert all(np.isfinite(r["rmse"]) for r in history)
    # Backward evaluations are counted on every `count_every`-th step only (default 50: step 0 here).
    assert [r["step"] for r in history if "nfe_backward" in r] == [0]
    assert history[0]["nfe_backward"] > 0
    assert not (out / "train-state").exists()  # a finished run leaves nothing to resume
    snapshots, snapshot_metadata = pyode.load_arrays(out / "snapshots.npz")
    assert snapshot_metadata["kind"] == "snapshots"
    assert snapshots["steps"].tolist() == [0, 2, 4]
    assert snapshots["parameters"].shape == (3, sum(leaf.size for leaf in leaves))
    assert not np.array_equal(snapshots["parameters"][0], snapshots["parameters"][-1])
    final = np.concatenate([np.ravel(leaf) for leaf in leaves])
    np.testing.assert_array_equal(snapshots["parameters"][-1], final)


def test_interrupted_training_resumes_to_the_uninterrupted_result(short_runs, tmp_path, monkeypatch):
    """SIGINT while the third of 4 steps draws its batch: that step finishes and the state is kept;
    the same call again runs only the last step, to the result of the uninterrupted run."""
    folder, settings, fit_name = short_runs["regression_ab"]
    sampled = []
    original = dynamics.sample_windows

    def sample(*args, **kwargs):
        sampled.append(len(sampled))
        if len(sampled) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(dynamics, "sample_windows", sample)
    out = tmp_path / "resumed"
    with pytest.raises(TrainingInterrupted, match="after step 3 of 4"):
        dynamics.train(folder / "data.npz", settings, out, progress=False)
    assert (out / "train-state").is_dir()
    assert not (out / "model.npz").exists() and not (out / "history.jsonl").exists()
    sampled.clear()
    dynamics.train(folder / "data.npz", settings, out, progress=False)
    assert len(sampled) == 1  # only the last step ran again
    assert not (out / "train-state").exists()
    straight, straight_metadata = load_model(folder / fit_name / "model.npz")
    resumed, resumed_metadata = load_model(out / "model.npz")
    assert eqx.tree_equal(straight, resumed)
    assert resumed_metadata["identity"] == straight_metadata["identity"]
    histories = [read_history(run / "history.jsonl") for run in (out, folder / fit_name)]
    assert [r["step"] for r in histories[0]] == [0, 1, 2, 3]
    assert [r["loss"] for r in histories[0]] == [r["loss"] for r in histories[1]]
    snapshots = [pyode.load_arrays(run / "snapshots.npz")[0] for run in (out, folder / fit_name)]
    np.testing.assert_array_equal(snapshots[0]["parameters"], snapshots[1]["parameters"])


def test_evaluation_writes_metrics_and_figures(short_runs, tmp_path):
    folder, settings, fit_name = short_runs["linear_spiral"]
    record = dynamics.evaluate(folder / "data.npz", [folder / fit_name], tmp_path)
    for name in (
        "metrics.json",
        "loss.png",
        "trajectories.png",
        "field.png",
        "snapshots.png",
        "training.gif",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    run = "linear_spiral/linear"
    assert record["experiment"] == "dynamics" and record["status"] == "ok"
    assert [entry["run"] for entry in record["runs"]] == [run]
    assert record["runs"][0]["settings"] == settings.to_dict()
    metrics = run_metrics(record, run)
    details = record["details"][run]
    assert np.array(details["true_matrix"]) == pytest.approx(LINEAR_SPIRAL_MATRIX)
    field, _ = load_model(folder / fit_name / "model.npz")
    learned = np.array(details["learned_matrix"])
    np.testing.assert_allclose(learned, np.asarray(field.matrix, np.float64))
    error = np.linalg.norm(learned - LINEAR_SPIRAL_MATRIX) / np.linalg.norm(LINEAR_SPIRAL_MATRIX)
    assert metrics["matrix_relative_error"] == pytest.approx(error)
    assert metrics["train_rmse"] > 0 and metrics["extrapolation_rmse_true"] > 0 and metrics["window_rmse"] > 0
    assert metrics["train_steps"] == 4 and metrics["trajectories"] == 1
    assert record["details"]["noise"] == Trajectories.load(folder / "data.npz").noise == 0.01
    assert record["dtype"] == "data float64, training float32"
    assert record["units"]["matrix_relative_error"] == "fraction"
    assert json.loads((tmp_path / "metrics.json").read_text())["runs"][0]["run"] == run


def test_evaluation_refuses_a_fit_of_another_system(short_runs, tmp_path):
    folder, _, _ = short_runs["linear_spiral"]
    other, _, fit_name = short_runs["nn_spiral"]
    with pytest.raises(SettingsError, match="a fit of 'nn_spiral', not of 'linear_spiral'"):
        dynamics.evaluate(folder / "data.npz", [other / fit_name], tmp_path)


@pytest.mark.slow
def test_linear_spiral_fits_meet_their_targets(tmp_path):
    """The default linear_spiral run: A recovered within 5%, the MLP within three times the noise."""
    runs = dynamics.plan({"systems": [{"name": "linear_spiral"}]}, seed=0)
    dynamics.make_data(runs["linear_spiral/linear"].part(dynamics.DataSettings), tmp_path / "data.npz")
    for settings in runs.values():
        dynamics.train(tmp_path / "data.npz", settings, tmp_path / settings.fit.name, progress=False)
    record = dynamics.evaluate(
        tmp_path / "data.npz", [tmp_path / "linear", tmp_path / "mlp"], tmp_path / "evaluation"
    )
    assert run_metrics(record, "linear_spiral/linear")["matrix_relative_error"] < 0.05
    assert run_metrics(record, "linear_spiral/mlp")["train_rmse"] <= 3 * record["details"]["noise"]
    for name in ("loss.png", "trajectories.png", "field.png", "snapshots.png", "training.gif"):
        assert (tmp_path / "evaluation" / name).stat().st_size > 0, name
