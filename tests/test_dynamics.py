"""The dynamics experiment: generators, window sampling, short real trainings, evaluation."""

import json

import equinox as eqx
import jax
import numpy as np
import pytest
from scipy.linalg import expm

from pyode._dynamics import (
    evaluate_dynamics,
    load_field,
    make_data,
    resolve_settings,
    snapshot_steps,
    train_dynamics,
)
from pyode.data import DYNAMICS_GENERATORS, Trajectories, make_trajectories, sample_windows
from pyode.data._dynamics import LINEAR_SPIRAL_MATRIX, LINEAR_SPIRAL_START

SMALL_DATA = {
    "vdp": {"trajectories": 2, "observations": 30, "t1": 3.0, "extrapolation_points": 10},
    "linear_spiral": {"observations": 40, "t1": 6.0, "extrapolation_points": 10},
    "nn_spiral": {"observations": 40, "t1": 6.0, "extrapolation_points": 10},
    "regression_ab": {"pairs": 3, "extrapolation_points": 5},
}


def _short_run(system: str) -> dict:
    return {
        "data": SMALL_DATA[system],
        "field": {"width": 8},
        "window": {"batch": 2, "max_points": 8} if system != "regression_ab" else {"batch": 3},
        "train": {"steps": 4, "checkpoint_every": 2, "schedule": "constant"},
        "snapshots": 2,
    }


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
    with pytest.raises(ValueError, match="wiggle"):
        resolve_settings("vdp", {"data": {"wiggle": 1}})
    with pytest.raises(ValueError, match="lerning_rate"):
        resolve_settings("nn_spiral", {"train": {"lerning_rate": 1.0}})


def test_save_and_load_round_trip(tmp_path):
    data = make_trajectories("vdp", seed=0, **SMALL_DATA["vdp"])
    data.save(tmp_path / "data.npz")
    loaded = Trajectories.load(tmp_path / "data.npz")
    assert loaded.system == "vdp" and loaded.settings == data.settings
    np.testing.assert_array_equal(loaded.ys, data.ys)


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
    assert snapshot_steps({"train": {"steps": 10}, "snapshots": 4}) == [0, 3, 6, 9, 10]
    assert snapshot_steps({"train": {"steps": 3}, "snapshots": 20}) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """Every system's data and a 4-step training of its first fit (linear_spiral: the linear one)."""
    runs = {}
    for system in DYNAMICS_GENERATORS:
        folder = tmp_path_factory.mktemp(system)
        settings = _short_run(system)
        make_data(system, settings).save(folder / "data.npz")
        fit_name = resolve_settings(system, settings)["fits"][0]["name"]
        train_dynamics(folder / "data.npz", settings, fit_name, folder / fit_name, progress=False)
        runs[system] = (folder, settings, fit_name)
    return runs


@pytest.mark.parametrize("system", list(DYNAMICS_GENERATORS))
def test_short_training_run(system, short_runs):
    folder, _, fit_name = short_runs[system]
    out = folder / fit_name
    field, metadata = load_field(out / "model.eqx")
    assert metadata["system"] == system and metadata["fit"] == fit_name
    leaves = jax.tree_util.tree_leaves(eqx.filter(field, eqx.is_array))
    assert all(leaf.dtype == np.float32 for leaf in leaves)
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == [0, 1, 2, 3]
    assert all(np.isfinite(r["loss"]) and r["nfe_forward"] > 0 for r in history)
    with np.load(out / "snapshots.npz") as snapshots:
        assert snapshots["steps"].tolist() == [0, 2, 4]
        assert not np.array_equal(snapshots["parameters"][0], snapshots["parameters"][-1])


def test_resumed_training_equals_uninterrupted(short_runs):
    folder, settings, fit_name = short_runs["regression_ab"]
    straight, _ = load_field(folder / fit_name / "model.eqx")
    half = json.loads(json.dumps(settings))
    half["train"]["steps"] = 2
    train_dynamics(folder / "data.npz", half, fit_name, folder / "resumed", progress=False)
    resumed = train_dynamics(folder / "data.npz", settings, fit_name, folder / "resumed", progress=False)
    assert eqx.tree_equal(straight, resumed)
    losses = [
        [json.loads(line)["loss"] for line in (folder / run / "history.jsonl").read_text().splitlines()]
        for run in ("resumed", fit_name)
    ]
    assert losses[0] == losses[1]


def test_evaluation_writes_metrics_and_figures(short_runs, tmp_path):
    folder, _, fit_name = short_runs["linear_spiral"]
    metrics = evaluate_dynamics(folder / "data.npz", [folder / fit_name], tmp_path)
    for name in (
        "metrics.json",
        "loss.png",
        "trajectories.png",
        "field.png",
        "snapshots.png",
        "training.gif",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    linear = metrics["fits"]["linear"]
    assert np.array(linear["true_matrix"]) == pytest.approx(LINEAR_SPIRAL_MATRIX)
    assert linear["train_rmse"] > 0 and linear["extrapolation_rmse_true"] > 0 and linear["window_rmse"] > 0
    assert metrics["dtype"] == {"data": "float64", "training": "float32"}
    assert json.loads((tmp_path / "metrics.json").read_text())["system"] == "linear_spiral"


@pytest.mark.slow
def test_linear_spiral_fits_meet_their_targets(tmp_path):
    """The default linear_spiral run: A recovered within 5%, the MLP within three times the noise."""
    make_data("linear_spiral", {}).save(tmp_path / "data.npz")
    for fit_name in ("linear", "mlp"):
        train_dynamics(tmp_path / "data.npz", {}, fit_name, tmp_path / fit_name, progress=False)
    runs = [tmp_path / "linear", tmp_path / "mlp"]
    metrics = evaluate_dynamics(tmp_path / "data.npz", runs, tmp_path / "evaluation")
    assert metrics["fits"]["linear"]["matrix_relative_error"] < 0.05
    assert metrics["fits"]["mlp"]["train_rmse"] <= 3 * metrics["noise"]
    for name in ("loss.png", "trajectories.png", "field.png", "snapshots.png", "training.gif"):
        assert (tmp_path / "evaluation" / name).stat().st_size > 0, name
