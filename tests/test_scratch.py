"""pyode.scratch: NumPy solvers and the hand-written adjoint against analytic solutions,
finite differences and Diffrax."""

import json
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import pyode
from pyode.experiments import SettingsError, regression
from pyode.models import mlp_field_from_weights
from pyode.scratch import (
    TABLEAUS,
    Adam,
    AdamState,
    ScratchMLP,
    ScratchVanDerPol,
    adjoint_gradients,
    backprop_gradients,
    clip_by_global_norm,
    flatten_weights,
    linear_loss,
    odeint,
    random_mlp,
    unflatten_weights,
)
from pyode.scratch._solvers import Integrator


@pytest.fixture(autouse=True, scope="module")
def enable_x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max |expected|."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def to_equinox(field: ScratchMLP):
    """The Equinox `MLPField` holding the weights of a `ScratchMLP` (the layouts are the same)."""
    weights = [(jnp.asarray(w), jnp.asarray(b)) for w, b in field.weights]
    return mlp_field_from_weights(weights, activation=field.activation, time_input=field.time_input)


def to_scratch(equinox_field) -> ScratchMLP:
    """The `ScratchMLP` holding the weights of an Equinox `MLPField`."""
    weights = [(np.asarray(w), np.asarray(b)) for w, b in equinox_field.weights()]
    return ScratchMLP(weights, equinox_field.activation, equinox_field.time_input)


def make_case(dim: int, time_input: bool, activation: str = "tanh", seed: int = 0):
    """A random field, a batch of three initial states, save times and a linear loss's cotangent."""
    rng = np.random.default_rng(100 + seed)
    field = random_mlp(dim, width=8, depth=1, activation=activation, time_input=time_input, seed=seed)
    y0 = rng.standard_normal((3, dim))
    ts = np.array([0.0, 0.25, 0.5, 1.0])
    cotangent = rng.standard_normal((len(ts), 3, dim))
    return field, y0, ts, cotangent


def test_importing_scratch_imports_no_autodiff_library():
    """Import pyode.scratch in a fresh interpreter and inspect sys.modules."""
    program = """
import sys
import pyode.scratch
banned = ("jax", "jaxlib", "equinox", "diffrax", "optax", "torch", "tensorflow", "autograd", "matplotlib")
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(banned))
assert not loaded, loaded
assert hasattr(pyode.scratch, "adjoint_gradients")
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("activation", ["tanh", "elu", "softplus", "relu", "silu"])
@pytest.mark.parametrize("time_input", [False, True])
def test_field_and_its_vjps_match_jax(activation, time_input):
    field = random_mlp(3, width=6, depth=2, activation=activation, time_input=time_input, seed=1)
    equinox_field = to_equinox(field)
    rng = np.random.default_rng(2)
    y, cotangent, t = rng.standard_normal((5, 3)), rng.standard_normal((5, 3)), 0.7

    products = field.vjp(t, y, cotangent)
    value, pullback = jax.vjp(lambda tt, yy, f: f(tt, yy), jnp.asarray(t), jnp.asarray(y), equinox_field)
    grad_t, grad_y, grad_field = pullback(jnp.asarray(cotangent))

    np.testing.assert_allclose(products.value, value, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(field(t, y), value, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(products.y, grad_y, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(products.t, grad_t, rtol=1e-13, atol=1e-14)
    grad_weights = unflatten_weights(products.theta, field.weights)
    for (weight, bias), (grad_weight, grad_bias) in zip(grad_field.weights(), grad_weights, strict=True):
        np.testing.assert_allclose(grad_weight, weight, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(grad_bias, bias, rtol=1e-13, atol=1e-14)
    round_trip = to_scratch(equinox_field)
    assert (round_trip.activation, round_trip.time_input) == (activation, time_input)
    for (w1, b1), (w2, b2) in zip(round_trip.weights, field.weights, strict=True):
        assert np.array_equal(w1, w2) and np.array_equal(b1, b2)


def linear_problem():
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((3, 3)) - 0.5 * np.eye(3)
    y0 = rng.standard_normal(3)
    exact = scipy.linalg.expm(matrix * 1.0) @ y0
    return (lambda t, y: matrix @ y), y0, exact


@pytest.mark.parametrize(
    ("method", "order", "step_counts", "evaluations_per_step", "extra_evaluations"),
    [
        ("euler", 1, [50, 100, 200, 400], 1, 0),
        ("rk4", 4, [20, 40, 80, 160], 4, 0),
        ("dopri5", 5, [20, 40, 80, 160], 6, 1),
    ],
)
def test_order_of_convergence_on_a_linear_ode(
    method, order, step_counts, evaluations_per_step, extra_evaluations
):
    assert TABLEAUS[method].order == order
    field, y0, exact = linear_problem()
    errors = []
    for steps in step_counts:
        solution = odeint(field, y0, np.array([0.0, 1.0]), method=method, steps=steps)
        errors.append(np.linalg.norm(solution.ys[-1] - exact))
        assert solution.nfe == evaluations_per_step * steps + extra_evaluations
    slope = np.polyfit(np.log(1.0 / np.array(step_counts)), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.15, (method, slope)


def test_adaptive_dopri5_error_follows_the_tolerance():
    field, y0, exact = linear_problem()
    errors, evaluations = [], []
    for tolerance in [1e-4, 1e-6, 1e-8, 1e-10]:
        solution = odeint(field, y0, np.array([0.0, 0.3, 1.0]), rtol=tolerance, atol=tolerance)
        errors.append(np.linalg.norm(solution.ys[-1] - exact))
        evaluations.append(solution.nfe)
        assert errors[-1] < 100 * tolerance
    assert all(later < earlier for earlier, later in zip(errors, errors[1:], strict=False))
    assert all(later > earlier for earlier, later in zip(evaluations, evaluations[1:], strict=False))


def fine_rk4_loss(field, y0, ts, cotangent, steps_per_interval: int = 1000) -> float:
    """A reference loss from many fixed RK4 steps on each interval (smooth in y0, theta and ts)."""
    ys = Integrator(field, "rk4").solve(y0, ts, [steps_per_interval] * (len(ts) - 1))
    return float(np.sum(cotangent * ys))


def directional_derivative(loss, h: float = 1e-3) -> float:
    """d/de loss(e) at 0 by the fourth-order central difference."""
    return (8 * (loss(h) - loss(-h)) - (loss(2 * h) - loss(-2 * h))) / (12 * h)


def directional_errors(gradients, field, y0, ts, cotangent, reference_loss, seed: int) -> dict[str, float]:
    """Relative error of the gradient along a random direction in y0, in theta and in ts."""
    rng = np.random.default_rng(seed)
    theta = field.flat_parameters()
    v_y0, v_theta, v_ts = (
        rng.standard_normal(y0.shape),
        rng.standard_normal(theta.shape),
        rng.standard_normal(ts.shape),
    )
    v_ts *= 0.05
    directions = {
        "y0": (
            lambda e: reference_loss(field, y0 + e * v_y0, ts, cotangent),
            np.sum(gradients.grad_y0 * v_y0),
        ),
        "theta": (
            lambda e: reference_loss(field.with_flat_parameters(theta + e * v_theta), y0, ts, cotangent),
            gradients.grad_theta @ v_theta,
        ),
        "ts": (lambda e: reference_loss(field, y0, ts + e * v_ts, cotangent), gradients.grad_ts @ v_ts),
    }
    errors = {}
    for name, (loss, predicted) in directions.items():
        expected = directional_derivative(loss)
        errors[name] = abs(predicted - expected) / abs(expected)
    return errors


@pytest.mark.parametrize(
    ("dim", "time_input", "activation"),
    [(1, False, "tanh"), (2, True, "softplus"), (3, False, "elu"), (4, True, "tanh")],
)
def test_adjoint_matches_finite_differences(dim, time_input, activation):
    field, y0, ts, cotangent = make_case(dim, time_input, activation, seed=dim)
    gradients = adjoint_gradients(field, y0, ts, linear_loss(cotangent), rtol=1e-10, atol=1e-10)
    errors = directional_errors(gradients, field, y0, ts, cotangent, fine_rk4_loss, seed=dim)
    assert max(errors.values()) < 1e-7, errors
    assert gradients.nfe_forward > 0 and gradients.nfe_backward > 0


def diffrax_gradients(field, y0, ts, cotangent, **options):
    """dL/dy0 and dL/dtheta (flat) of the same linear loss through pyode.solve."""

    @eqx.filter_jit
    @eqx.filter_grad
    def grad(field_and_y0):
        equinox_field, initial = field_and_y0
        solution = pyode.solve(equinox_field, initial, jnp.asarray(ts), max_steps=1024, **options)
        return jnp.sum(jnp.asarray(cotangent) * solution.ys)

    grad_field, grad_y0 = grad((to_equinox(field), jnp.asarray(y0)))
    grad_weights = [(np.asarray(w), np.asarray(b)) for w, b in grad_field.weights()]
    return np.asarray(grad_y0), flatten_weights(grad_weights)


DIFFRAX_CASES = [
    pytest.param(1, False, "tanh", "checkpoint", id="dim1-checkpoint"),
    pytest.param(3, True, "tanh", "checkpoint", id="dim3-time-checkpoint"),
    pytest.param(2, True, "elu", "backsolve", id="dim2-time-backsolve", marks=pytest.mark.slow),
    pytest.param(4, False, "softplus", "backsolve", id="dim4-backsolve", marks=pytest.mark.slow),
    pytest.param(2, False, "relu", "checkpoint", id="dim2-relu-checkpoint", marks=pytest.mark.slow),
    pytest.param(4, True, "tanh", "backsolve", id="dim4-time-backsolve", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("dim", "time_input", "activation", "adjoint"), DIFFRAX_CASES)
def test_adjoint_matches_diffrax(dim, time_input, activation, adjoint):
    field, y0, ts, cotangent = make_case(dim, time_input, activation, seed=10 + dim)
    gradients = adjoint_gradients(field, y0, ts, linear_loss(cotangent), rtol=1e-10, atol=1e-10)
    grad_y0, grad_theta = diffrax_gradients(
        field, y0, ts, cotangent, solver="dopri5", adjoint=adjoint, rtol=1e-10, atol=1e-10
    )
    assert relative_error(gradients.grad_y0, grad_y0) < 1e-7
    assert relative_error(gradients.grad_theta, grad_theta) < 1e-7


def test_van_der_pol_vjp_matches_jax():
    from pyode.models import VanDerPol

    field, rng = ScratchVanDerPol(7.0), np.random.default_rng(3)
    y, cotangent = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    products = field.vjp(0.3, y, cotangent)
    value, pullback = jax.vjp(lambda yy, f: f(0.3, yy), jnp.asarray(y), VanDerPol(7.0))
    grad_y, grad_field = pullback(jnp.asarray(cotangent))
    np.testing.assert_allclose(products.value, value, rtol=1e-13)
    np.testing.assert_allclose(products.y, grad_y, rtol=1e-13)
    np.testing.assert_allclose(products.theta, grad_field.theta, rtol=1e-13)


def test_restarting_every_step_makes_the_adjoint_work_on_a_stiff_problem():
    """Stiff Van der Pol (mu = 10): re-integrating z backward between save times diverges;
    restarting it from the forward solution at every step gives Diffrax's gradient."""
    from pyode.models import VanDerPol

    field, ts = ScratchVanDerPol(10.0), np.linspace(0.0, 2.0, 5)
    y0 = np.array([[2.6, 1.3], [2.3, 0.3]])
    cotangent = np.random.default_rng(4).standard_normal((len(ts), 2, 2))
    tolerances = {"rtol": 1e-9, "atol": 1e-9}
    stepwise = adjoint_gradients(field, y0, ts, linear_loss(cotangent), restart="steps", **tolerances)

    def loss(field, y0):
        ys = pyode.solve(field, y0, jnp.asarray(ts), max_steps=100_000, **tolerances).ys
        return jnp.sum(jnp.asarray(cotangent) * ys)

    grad_field, grad_y0 = jax.grad(loss, argnums=(0, 1))(VanDerPol(10.0), jnp.asarray(y0))
    assert relative_error(stepwise.grad_y0, np.asarray(grad_y0)) < 1e-6
    assert relative_error(stepwise.grad_theta, np.asarray(grad_field.theta)) < 1e-6
    with pytest.raises(RuntimeError, match="steps"):
        adjoint_gradients(field, y0, ts, linear_loss(cotangent), max_steps=20_000, **tolerances)
    with pytest.raises(ValueError, match="restart"):
        adjoint_gradients(field, y0, ts, linear_loss(cotangent), restart="never", **tolerances)


def test_restarting_every_step_agrees_on_a_non_stiff_field():
    field, y0, ts, cotangent = make_case(2, True, "tanh", seed=9)
    options = {"rtol": 1e-10, "atol": 1e-10}
    per_save = adjoint_gradients(field, y0, ts, linear_loss(cotangent), **options)
    per_step = adjoint_gradients(field, y0, ts, linear_loss(cotangent), restart="steps", **options)
    assert relative_error(per_step.grad_theta, per_save.grad_theta) < 1e-8
    assert relative_error(per_step.grad_y0, per_save.grad_y0) < 1e-8
    fixed = adjoint_gradients(field, y0, ts, linear_loss(cotangent), method="rk4", steps=20, restart="steps")
    assert fixed.nfe_forward == 4 * 20 and relative_error(fixed.grad_theta, per_save.grad_theta) < 1e-4


def test_backprop_through_rk4_equals_diffrax_checkpoint_to_round_off():
    field, y0, ts, cotangent = make_case(2, True, "tanh", seed=5)
    ts = np.array([0.0, 0.5, 1.0])
    cotangent = cotangent[: len(ts)]
    gradients = backprop_gradients(field, y0, ts, linear_loss(cotangent), method="rk4", steps=8)
    grad_y0, grad_theta = diffrax_gradients(
        field, y0, ts, cotangent, solver="rk4", adjoint="checkpoint", steps=8
    )
    assert relative_error(gradients.grad_y0, grad_y0) < 1e-10
    assert relative_error(gradients.grad_theta, grad_theta) < 1e-10
    assert gradients.nfe_forward == 4 * 8 and gradients.nfe_backward == 4 * 8


@pytest.mark.parametrize("method", ["euler", "rk4", "dopri5"])
def test_backprop_is_the_exact_gradient_of_the_discrete_solve(method):
    field, y0, ts, cotangent = make_case(2, True, "softplus", seed=6)
    steps = 12
    gradients = backprop_gradients(field, y0, ts, linear_loss(cotangent), method=method, steps=steps)

    def discrete_loss(field, y0, ts, cotangent):
        counts = [3, 3, 6]  # the grid of 12 equal steps over [0, 1] with these save times
        return float(np.sum(cotangent * Integrator(field, method).solve(y0, ts, counts)))

    errors = directional_errors(gradients, field, y0, ts, cotangent, discrete_loss, seed=7)
    assert max(errors.values()) < 1e-8, errors


def test_continuous_adjoint_approaches_backprop_as_steps_shrink():
    """At a finite step the two gradients differ (by O(h^4) for RK4); they agree in the limit."""
    field, y0, ts, cotangent = make_case(2, False, "tanh", seed=8)
    differences = []
    for steps in [4, 8, 16]:
        adjoint = adjoint_gradients(field, y0, ts, linear_loss(cotangent), method="rk4", steps=steps)
        backprop = backprop_gradients(field, y0, ts, linear_loss(cotangent), method="rk4", steps=steps)
        differences.append(relative_error(adjoint.grad_theta, backprop.grad_theta))
    assert differences[0] > 1e-8
    assert differences[1] < differences[0] / 8 and differences[2] < differences[1] / 8


def test_clipping_and_adam():
    clipped, norm = clip_by_global_norm(np.array([3.0, 4.0]), 1.0)
    np.testing.assert_allclose(clipped, [0.6, 0.8])
    assert norm == 5.0
    unchanged, _ = clip_by_global_norm(np.array([0.3, 0.4]), 1.0)
    np.testing.assert_array_equal(unchanged, [0.3, 0.4])
    adam, params = Adam(0.1), np.array([2.0, -3.0])
    state = adam.init(params)
    assert state.count == 0 and not np.any(state.first_moment) and not np.any(state.second_moment)
    for _ in range(300):
        params, state = adam.update(params, 2 * params, state)
    assert np.linalg.norm(params) < 0.05
    assert isinstance(state, AdamState) and state.count == 300


def test_adam_is_a_pure_function_of_its_state():
    """A run continued from a saved state equals the uninterrupted run; the old state is untouched."""
    adam, start = Adam(0.05), np.array([1.0, -2.0, 0.5])

    def gradient(params):
        return np.array([2.0, 4.0, 6.0]) * params

    params, state = start, adam.init(start)
    for _ in range(10):
        params, state = adam.update(params, gradient(params), state)
    saved = AdamState(state.first_moment.copy(), state.second_moment.copy(), state.count)
    once, _ = adam.update(params, gradient(params), state)
    again, _ = adam.update(params, gradient(params), state)
    np.testing.assert_array_equal(once, again)
    np.testing.assert_array_equal(state.first_moment, saved.first_moment)
    np.testing.assert_array_equal(state.second_moment, saved.second_moment)
    assert state.count == saved.count == 10

    straight, straight_state = start, adam.init(start)
    for _ in range(20):
        straight, straight_state = adam.update(straight, gradient(straight), straight_state)
    resumed, resumed_state = params, saved
    for _ in range(10):
        resumed, resumed_state = adam.update(resumed, gradient(resumed), resumed_state)
    np.testing.assert_array_equal(resumed, straight)
    assert resumed_state.count == straight_state.count == 20


def test_regression_settings_reject_unknown_and_invalid_keys():
    with pytest.raises(SettingsError, match=r"unknown key settings\.learning_rat\b"):
        regression.resolve({"learning_rat": 0.1})
    with pytest.raises(SettingsError, match=r"unknown key settings\.train\.learning_rat\b"):
        regression.resolve({"train": {"learning_rat": 0.1}})
    with pytest.raises(SettingsError, match=r"settings\.solve\.solver is 'tsit5'"):
        regression.resolve({"solve": {"solver": "tsit5"}})
    with pytest.raises(SettingsError, match=r"settings\.solve\.gradient is 'backprop'"):
        regression.resolve({"solve": {"gradient": "backprop", "solver": "dopri5"}})
    assert issubclass(SettingsError, ValueError)
    defaults = regression.resolve({})
    assert defaults.dtype == "float64" and defaults == regression.Settings()
    backprop = regression.resolve({"solve": {"gradient": "backprop", "solver": "rk4"}})
    assert (backprop.solve.solver, backprop.solve.gradient) == ("rk4", "backprop")


@pytest.mark.parametrize(
    "changes",
    [
        {"pairs": 1, "train": {"steps": 30}},
        {"pairs": 3, "train": {"steps": 30}, "solve": {"solver": "rk4", "steps": 10, "gradient": "backprop"}},
    ],
    ids=["one-pair-adjoint", "batch-backprop-rk4"],
)
def test_regression_trains_and_writes_its_outputs(tmp_path, changes):
    settings = regression.resolve(changes)
    record = regression.run(settings, tmp_path, progress=False)
    (run,) = record["runs"]
    metrics = run["metrics"]
    assert run["run"] == "a_to_b" and record["experiment"] == "regression"
    assert metrics["final_loss"] < 0.5 * metrics["initial_loss"]
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["runs"][0]["metrics"]["final_loss"] == metrics["final_loss"]
    with open(tmp_path / "history.jsonl") as file:
        rows = [json.loads(line) for line in file if line.strip()]
    assert len(rows) == settings.train.steps
    assert [row["step"] for row in rows] == list(range(settings.train.steps))
    assert {"step", "loss", "nfe_forward", "nfe_backward"} <= set(rows[0])
    assert all(row["nfe_forward"] > 0 and row["nfe_backward"] > 0 for row in rows)
    assert metrics["initial_loss"] == rows[0]["loss"]
    arrays, metadata = pyode.load_arrays(tmp_path / "model.npz")
    assert metadata["experiment"] == "regression" and metadata["settings"] == settings.to_dict()
    trained = regression.make_field(settings).with_flat_parameters(arrays["theta"])
    starts, targets = regression.regression_pairs(settings)
    reloaded = regression.gradients(trained, starts, targets, settings)
    assert reloaded.loss == pytest.approx(metrics["final_loss"])
    for figure in ["loss.png", "trajectory.png"]:
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
