"""Second-order experiment: SONODE's first-order form against the analytic damped oscillator (JAX and
NumPy), the three position models, the crossing argument, short trainings, settings."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import relative_error

from pyode import scratch, solve
from pyode.data import PositionSeries, crossing, damped_oscillator, damped_oscillator_position
from pyode.experiments import SettingsError, sonode
from pyode.models import (
    POSITION_MODELS,
    SecondOrderField,
    build_model,
    make_position_ode,
    mlp_field_from_weights,
    parameter_count,
)
from pyode.train import OptaxStepper

GAMMA, OMEGA = 0.1, 1.3


def _oscillator_field() -> SecondOrderField:
    """x'' = -(gamma^2 + omega^2) x - 2 gamma x' as a SONODE field: one linear layer [x, v] -> x''."""
    weights = [(jnp.array([[-(GAMMA**2 + OMEGA**2), -2 * GAMMA]]), jnp.zeros(1))]
    return SecondOrderField(mlp_field_from_weights(weights, activation="tanh", time_input=False))


def test_the_first_order_form_matches_the_analytic_damped_oscillator():
    field = _oscillator_field()
    starts = jnp.array([[1.0, 0.0], [-0.5, 2.0], [2.0, -1.0]])
    ts = jnp.linspace(0.0, 12.0, 25)
    solution = solve(field, starts, ts, solver="dopri5", rtol=1e-11, atol=1e-11, max_steps=100_000)
    exact = damped_oscillator_position(
        np.asarray(ts)[:, None], np.asarray(starts[:, 0]), np.asarray(starts[:, 1]), GAMMA, OMEGA
    )
    np.testing.assert_allclose(solution.ys[..., 0], exact, atol=1e-9)
    eps = 1e-6  # the velocity component is the position's derivative
    later = damped_oscillator_position(
        np.asarray(ts)[:, None] + eps, np.asarray(starts[:, 0]), np.asarray(starts[:, 1]), GAMMA, OMEGA
    )
    earlier = damped_oscillator_position(
        np.asarray(ts)[:, None] - eps, np.asarray(starts[:, 0]), np.asarray(starts[:, 1]), GAMMA, OMEGA
    )
    np.testing.assert_allclose(solution.ys[..., 1], (later - earlier) / (2 * eps), atol=1e-7)
    numpy_field = scratch.ScratchSecondOrder(
        [(np.asarray(w), np.asarray(b)) for w, b in field.acceleration.weights()]
    )
    numpy_solution = scratch.odeint(
        numpy_field, np.asarray(starts), np.asarray(ts), method="dopri5", rtol=1e-11, atol=1e-11
    )
    np.testing.assert_allclose(numpy_solution.ys[..., 0], exact, atol=1e-9)


def test_the_numpy_second_order_field_has_the_vjps_of_the_jax_one():
    key = jax.random.PRNGKey(0)
    jax_field = make_position_ode("sonode", dim=2, width=5, time_input=True, solve_options={}, key=key).field
    weights = [
        (np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in jax_field.acceleration.weights()
    ]
    numpy_field = scratch.ScratchSecondOrder(weights, "tanh", True)
    jax_field = SecondOrderField(
        mlp_field_from_weights(
            [(jnp.asarray(w), jnp.asarray(b)) for w, b in weights], activation="tanh", time_input=True
        )
    )
    y = np.random.default_rng(1).normal(size=(3, 4))
    cotangent = np.random.default_rng(2).normal(size=(3, 4))
    value, vjp = jax.vjp(lambda t, y, f: f(t, y), jnp.asarray(0.7), jnp.asarray(y), jax_field)
    grad_t, grad_y, grad_field = vjp(jnp.asarray(cotangent))
    mine = numpy_field.vjp(0.7, y, cotangent)
    np.testing.assert_allclose(mine.value, value, rtol=1e-12)
    np.testing.assert_allclose(mine.y, grad_y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mine.t, grad_t, rtol=1e-10)
    flat = scratch.flatten_weights(
        [(np.asarray(w), np.asarray(b)) for w, b in grad_field.acceleration.weights()]
    )
    assert relative_error(jnp.asarray(mine.theta), flat) < 1e-12
    assert numpy_field.dim == 4 and numpy_field.num_parameters == flat.size


@pytest.mark.parametrize("kind", POSITION_MODELS)
def test_position_models_lift_solve_and_count_their_parameters(kind):
    model = make_position_ode(
        kind,
        dim=1,
        augment=2,
        width=8,
        velocity_width=4,
        solve_options={"solver": "rk4", "steps": 8},
        key=jax.random.PRNGKey(0),
    )
    x0 = jnp.linspace(-1.0, 1.0, 5)[:, None]
    state = model.initial_state(x0)
    assert state.shape == (5, {"node": 1, "anode": 3, "sonode": 2}[kind])
    np.testing.assert_array_equal(state[:, :1], x0)
    if kind == "anode":
        assert jnp.all(state[:, 1:] == 0)
    positions, solution = model.positions(x0, jnp.linspace(0.0, 1.0, 4))
    assert positions.shape == (4, 5, 1) and solution.ys.shape == (4,) + state.shape
    np.testing.assert_allclose(positions[0], x0)
    expected = {
        "node": 8 + 8 + 8 + 1,
        "anode": 3 * 8 + 8 + 8 * 3 + 3,
        "sonode": (2 * 8 + 8 + 8 + 1) + (4 + 4 + 4 + 1),
    }
    assert parameter_count(model) == expected[kind]


def test_a_node_keeps_the_order_of_points_and_a_sonode_can_reverse_it():
    x0 = jnp.linspace(-1.0, 1.0, 9)[:, None]
    ts = jnp.array([0.0, 1.0])
    node = make_position_ode(
        "node",
        width=16,
        solve_options={"solver": "dopri5", "rtol": 1e-8, "atol": 1e-8},
        key=jax.random.PRNGKey(5),
    )
    final = node.positions(x0, ts)[0][-1, :, 0]
    assert jnp.all(jnp.diff(final) > 0), "a flow of x alone is increasing: points cannot cross"
    options = {"solver": "dopri5", "rtol": 1e-10, "atol": 1e-10}
    model = make_position_ode(
        "sonode", width=4, velocity_width=4, solve_options=options, key=jax.random.PRNGKey(0)
    )
    harmonic = [(jnp.array([[-(np.pi**2), 0.0]]), jnp.zeros(1))]  # x'' = -pi^2 x with v0 = 0: x(1) = -x0
    model = eqx.tree_at(
        lambda m: m.field,
        model,
        SecondOrderField(mlp_field_from_weights(harmonic, activation="tanh", time_input=False)),
    )
    last = model.initial_velocity.layers[-1]
    model = eqx.tree_at(lambda m: m.initial_velocity.layers[-1].weight, model, jnp.zeros_like(last.weight))
    sonode_model = eqx.tree_at(lambda m: m.initial_velocity.layers[-1].bias, model, jnp.zeros_like(last.bias))
    np.testing.assert_allclose(sonode_model.positions(x0, ts)[0][-1], -x0, atol=1e-8)


def test_task_data(tmp_path):
    task = crossing(10, test_points=5, seed=1)
    np.testing.assert_array_equal(task.truth[:, 1], -task.initial)
    np.testing.assert_array_equal(task.test_initial[:, 0], np.linspace(-1, 1, 5))
    oscillator = damped_oscillator(
        3, test_trajectories=2, observations=20, extrapolation_points=10, noise=0.0, velocity=0.5
    )
    exact = damped_oscillator_position(
        oscillator.all_ts[None, :, None], oscillator.initial[:, None], 0.5, 0.1, 1.0
    )
    np.testing.assert_allclose(
        np.concatenate([oscillator.truth, oscillator.extrapolation_truth], axis=1), exact
    )
    assert oscillator.test_truth.shape == (2, 30, 1)
    oscillator.save(tmp_path / "o.npz")
    assert PositionSeries.load(tmp_path / "o.npz").task == "oscillator"


@pytest.mark.parametrize("kind", POSITION_MODELS)
def test_a_short_training_lowers_the_loss(kind):
    data = damped_oscillator(4, observations=15, t1=5.0, noise=0.0)
    batch = tuple(jnp.asarray(a, jnp.float32) for a in (data.ts, data.initial, data.observed))
    spec = sonode.resolve(
        {
            "task": "oscillator",
            "model": {"kind": kind},
            "field": {"width": 8},
            "solve": {"solver": "rk4", "steps": 20},
        }
    ).model_spec()
    model = build_model("position_ode", spec, key=jax.random.PRNGKey(0))
    stepper = OptaxStepper(model, sonode.position_loss, optax.adam(2e-2))
    params, opt_state = stepper.init()
    losses = []
    for _ in range(40):
        result = stepper.step(params, opt_state, batch)
        assert result.failure is None
        params, opt_state = result.params, result.opt_state
        losses.append(result.loss)
    assert np.mean(losses[-5:]) < 0.7 * losses[0], losses


def test_plan_and_settings():
    section = {
        "tasks": [
            {"name": "crossing", "train": {"steps": 9}},
            {"name": "oscillator", "data": {"gamma": 0.2}},
        ],
        "models": [
            {"name": "node", "kind": "node"},
            {"name": "anode2", "kind": "anode", "augment": 2, "train": {"steps": 4}},
        ],
    }
    runs = sonode.plan(section, seed=3)
    assert set(runs) == {"crossing/node", "crossing/anode2", "oscillator/node", "oscillator/anode2"}
    assert runs["crossing/node"].train.steps == 9 and runs["crossing/anode2"].train.steps == 4
    assert runs["oscillator/node"].train.steps == 1500 and runs["oscillator/anode2"].model.augment == 2
    assert runs["oscillator/node"].data == {"gamma": 0.2} and runs["crossing/node"].field.width == 16
    with pytest.raises(SettingsError, match="oscillator takes no option gama"):
        sonode.resolve({"task": "oscillator", "data": {"gama": 0.2}})
    with pytest.raises(SettingsError, match="node appear more than once"):
        sonode.plan({**section, "models": section["models"] + [{"name": "node", "kind": "sonode"}]}, seed=0)
    for kind in ("sonode", "node"):
        with pytest.raises(
            SettingsError,
            match=rf"^sonode.models\[x\].augment is 2: it pads an ANODE's state with zero dimensions, "
            rf"and kind {kind!r} is not one \(augment is for kind anode only\)$",
        ):
            sonode.plan({**section, "models": [{"name": "x", "kind": kind, "augment": 2}]}, seed=0)


@pytest.mark.slow
def test_the_experiment_end_to_end(tmp_path):
    changes = {
        "task": "crossing",
        "data": {"points": 8, "test_points": 5},
        "solve": {"solver": "rk4", "steps": 6},
        "train": {"steps": 20, "count_every": 10},
    }
    runs = []
    for kind in POSITION_MODELS:
        settings = sonode.resolve({**changes, "model": {"name": kind, "kind": kind}})
        if not runs:
            sonode.make_data(settings.part(sonode.DataSettings), tmp_path / "data.npz")
        sonode.train(tmp_path / "data.npz", settings, tmp_path / kind, progress=False)
        runs.append(tmp_path / kind)
    record = sonode.evaluate(tmp_path / "data.npz", runs, tmp_path / "out")
    metrics = {entry["run"]: entry["metrics"] for entry in record["runs"]}
    assert set(metrics) == {"crossing/node", "crossing/anode", "crossing/sonode"}
    assert 0.0 <= metrics["crossing/node"]["test_sign_accuracy"] <= 1.0
    assert (tmp_path / "out" / "trajectories.png").stat().st_size > 0
