"""Latent ODE experiment: the spiral data, the encoder's handling of irregular times and padding, the
models' shapes, a short training whose loss falls, settings and the experiment end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pyode.data import SpiralSeries, bidirectional_spirals, spiral_paths
from pyode.experiments import SettingsError, latent
from pyode.models import (
    RecognitionRNN,
    RecurrentForecaster,
    build_model,
    latent_ode_loss,
    recurrent_loss,
)
from pyode.train import OptaxStepper

TINY = dict(test_spirals=6, observations=5, window=12, extrapolation=6, total_points=40, seed=3)


def test_spirals_are_windows_of_the_two_paths_half_each_way_with_sorted_random_times():
    data = bidirectional_spirals(20, **TINY)
    assert data.grid.shape == (18,) and data.window == 12
    assert data.train_truth.shape == data.train_noisy.shape == (20, 12, 2)
    assert data.test_truth.shape == (6, 18, 2) and data.test_index.shape == (6, 5)
    assert data.train_clockwise.sum() == 10 and data.test_clockwise.sum() == 3
    _, clockwise_path, counter_path = spiral_paths(40, 6 * np.pi, 0.0, 0.3)
    for part, length in (("train", 12), ("test", 18)):
        starts = []
        for truth, clockwise in zip(getattr(data, f"{part}_truth"), getattr(data, f"{part}_clockwise")):
            path = clockwise_path if clockwise else counter_path
            starts.append(int(np.argmin(np.linalg.norm(path - truth[0], axis=1))))
            np.testing.assert_allclose(truth, path[starts[-1] : starts[-1] + length], atol=1e-12)
        assert 12 <= min(starts) and max(starts) <= 40 - length
    many = bidirectional_spirals(400, **TINY)
    last_training_time = max(
        int(np.argmin(np.linalg.norm((clockwise_path if c else counter_path) - truth[-1], axis=1)))
        for truth, c in zip(many.train_truth, many.train_clockwise)
    )
    assert last_training_time == 39, "training windows reach the end of the paths"
    for index in data.train_index:
        assert np.all(np.diff(index) > 0) and index[0] >= 0 and index[-1] < 12
    assert 0.2 < np.std(data.train_noisy - data.train_truth) < 0.4
    times, values, index, mask = data.observed("train")
    np.testing.assert_array_equal(values[3], data.train_noisy[3, index[3]])
    np.testing.assert_array_equal(times[3], data.grid[index[3]])
    assert mask.shape == (20, 5) and mask.min() == 1


def test_observation_counts_share_the_series_and_differ_in_their_times(tmp_path):
    fewer = bidirectional_spirals(20, **TINY)
    more = bidirectional_spirals(20, **{**TINY, "observations": 9})
    np.testing.assert_array_equal(fewer.train_noisy, more.train_noisy)
    assert more.train_index.shape == (20, 9)
    fewer.save(tmp_path / "spirals.npz")
    loaded = SpiralSeries.load(tmp_path / "spirals.npz")
    np.testing.assert_array_equal(loaded.test_index, fewer.test_index)
    assert loaded.settings["observations"] == 5
    with pytest.raises(ValueError, match="observations must be between 1 and window"):
        bidirectional_spirals(20, **{**TINY, "observations": 13})


def _series(key, n=7):
    times = jnp.cumsum(jax.random.uniform(key, (n,), minval=0.05, maxval=0.3))
    values = jax.random.normal(jax.random.fold_in(key, 1), (n, 2))
    return times, values, jnp.ones(n)


def test_the_encoder_reads_the_time_gaps_and_the_order():
    encoder = RecognitionRNN(2, 3, 8, key=jax.random.PRNGKey(0))
    times, values, mask = _series(jax.random.PRNGKey(1))
    mean, logvar = encoder(times, values, mask)
    assert mean.shape == logvar.shape == (3,)
    gaps = jnp.diff(times)
    shuffled = jnp.concatenate([times[:1], times[0] + jnp.cumsum(gaps[jnp.array([3, 0, 5, 1, 4, 2])])])
    moved, _ = encoder(shuffled, values, mask)
    assert not jnp.allclose(moved, mean, atol=1e-4), "the same values at other times must give another q(z0)"
    shifted, _ = encoder(times + 2.0, values, mask)
    np.testing.assert_allclose(shifted, mean, atol=1e-6)  # only the gaps matter, not the clock
    reordered, _ = encoder(times, values[::-1], mask)
    assert not jnp.allclose(reordered, mean, atol=1e-4)


def test_padding_does_not_leak_into_the_encoder_or_the_rnn_baseline():
    encoder = RecognitionRNN(2, 3, 8, key=jax.random.PRNGKey(0))
    forecaster = RecurrentForecaster(2, 8, key=jax.random.PRNGKey(2))
    times, values, mask = _series(jax.random.PRNGKey(1), n=5)
    queries = times[-1] + jnp.array([0.1, 0.25, 0.3])
    compact = encoder(times, values, mask)
    compact_forecast = forecaster.forecast(times, values, mask, queries)
    _, compact_steps = forecaster.read(times, values, mask, queries[0])
    # the same observations on a grid of 9 entries, padding between and after them, full of junk
    at = jnp.array([0, 2, 3, 5, 6])
    grid_times = jnp.full(9, 123.0).at[at].set(times)
    grid_values = jnp.full((9, 2), -7.0).at[at].set(values)
    grid_mask = jnp.zeros(9).at[at].set(1.0)
    for padded, reference in ((encoder(grid_times, grid_values, grid_mask), compact),):
        np.testing.assert_allclose(padded[0], reference[0], atol=1e-6)
        np.testing.assert_allclose(padded[1], reference[1], atol=1e-6)
    np.testing.assert_allclose(
        forecaster.forecast(grid_times, grid_values, grid_mask, queries), compact_forecast, atol=1e-6
    )
    _, grid_steps = forecaster.read(grid_times, grid_values, grid_mask, queries[0])
    np.testing.assert_allclose(grid_steps[at], compact_steps, atol=1e-6)
    gradient = jax.grad(lambda v: jnp.sum(encoder(grid_times, v, grid_mask)[0]))(grid_values)
    assert jnp.all(gradient[jnp.array([1, 4, 7, 8])] == 0) and jnp.any(gradient[at] != 0)


SOLVE = {"solver": "rk4", "steps": 4}


def _batch(data, part="train", rows=slice(None)):
    grid, times, values, index, mask = latent.observations(data, part, rows)
    return grid, times, values, index, mask, jax.random.PRNGKey(0)


def test_latent_ode_and_rnn_shapes_and_losses():
    data = bidirectional_spirals(20, **TINY)
    model = build_model("latent_ode", {"latent": 3, "solve_options": SOLVE}, key=jax.random.PRNGKey(0))
    batch = _batch(data)
    mean, logvar = model.encode(*batch[1:3], batch[4])
    assert mean.shape == logvar.shape == (20, 3)
    path = model.latent_path(mean, jnp.asarray(data.grid, jnp.float32))
    assert path.ys.shape == (18, 20, 3) and model.decode(path.ys).shape == (18, 20, 2)
    loss, aux = latent_ode_loss(model, batch, noise=0.3)
    assert (
        loss.shape == () and jnp.isfinite(loss) and {"rmse", "kl", "nfe_forward", "solver_status"} <= set(aux)
    )
    rnn = build_model("recurrent_forecaster", {"obs_dim": 2, "hidden": 8}, key=jax.random.PRNGKey(0))
    loss, aux = recurrent_loss(rnn, batch, noise=0.3)
    assert jnp.isfinite(loss) and set(aux) == {"rmse"}
    predicted = latent.predict(rnn, data, "test", {})
    assert (
        predicted["extrapolation"].shape == (6, 6, 2) and np.isnan(predicted["at_observations"][:, 0]).all()
    )
    predicted = latent.predict(model, data, "test", SOLVE)
    assert predicted["window"].shape == (6, 12, 2) and predicted["latent"].shape == (6, 18, 3)


@pytest.mark.parametrize("kind", ["latent_ode", "recurrent_forecaster"])
def test_a_short_training_lowers_the_loss(kind):
    data = bidirectional_spirals(24, **TINY)
    spec = {"latent": 3, "solve_options": SOLVE} if kind == "latent_ode" else {"obs_dim": 2, "hidden": 8}
    model = build_model(kind, spec, key=jax.random.PRNGKey(0))
    loss_fn = latent_ode_loss if kind == "latent_ode" else recurrent_loss
    stepper = OptaxStepper(model, lambda m, b: loss_fn(m, b, noise=0.3), optax.adam(2e-2))
    params, opt_state = stepper.init()
    batch = _batch(data)
    losses = []
    for _ in range(40):
        result = stepper.step(params, opt_state, batch)
        assert result.failure is None
        params, opt_state = result.params, result.opt_state
        losses.append(result.loss)
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses


def test_plan_names_runs_by_count_and_model_and_checks_them():
    runs = latent.plan(
        {
            "observations": [30, 50],
            "models": ["latent_ode", "rnn"],
            "data": {"spirals": 200},
            "train": {"steps": 7},
            "model_train": {"rnn": {"steps": 3}},
        },
        seed=4,
    )
    assert set(runs) == {"obs30/latent_ode", "obs30/rnn", "obs50/latent_ode", "obs50/rnn"}
    assert runs["obs50/rnn"].train.steps == 3 and runs["obs30/latent_ode"].train.steps == 7
    assert runs["obs50/rnn"].observations == 50 and runs["obs30/rnn"].seed == 4
    assert runs["obs30/latent_ode"].part(latent.DataSettings) == runs["obs30/rnn"].part(latent.DataSettings)
    with pytest.raises(SettingsError, match="must include latent_ode"):
        latent.plan({"observations": [30], "models": ["rnn"]}, seed=0)
    with pytest.raises(SettingsError, match="observations must be between 1 and window"):
        latent.resolve({"observations": 101})
    with pytest.raises(SettingsError, match="batch_size is 500; there are 300 spirals"):
        latent.resolve({"data": {"spirals": 300}, "train": {"batch_size": 500}})


@pytest.mark.slow
def test_the_experiment_end_to_end(tmp_path):
    settings = latent.resolve(
        {
            "observations": 5,
            "data": {"spirals": 16, "test_spirals": 4, "window": 12, "extrapolation": 6, "total_points": 40},
            "solve": SOLVE,
            "train": {"steps": 30, "batch_size": 8, "count_every": 10},
        }
    )
    latent.make_data(settings.part(latent.DataSettings), tmp_path / "data.npz")
    runs = []
    for model in ("latent_ode", "rnn"):
        run = tmp_path / model
        latent.train(
            tmp_path / "data.npz", latent.resolve({**settings.to_dict(), "model": model}), run, progress=False
        )
        runs.append(run)
    record = latent.evaluate(tmp_path / "data.npz", runs, tmp_path / "out")
    metrics = {entry["run"]: entry["metrics"] for entry in record["runs"]}
    assert set(metrics) == {"obs5/latent_ode", "obs5/rnn"}
    assert metrics["obs5/latent_ode"]["train_steps"] == 30 and metrics["obs5/latent_ode"]["parameters"] > 0
    for name in ("spirals.png", "latent.png", "loss.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    rows = latent.summarise([record], tmp_path / "out")
    assert [row["model"] for row in rows] == ["latent_ode", "rnn"]
    assert "| 5 | latent_ode |" in (tmp_path / "out" / "summary.md").read_text()
