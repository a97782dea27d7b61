"""pyode.solve: names, errors, orders of convergence, gradients and evaluation counts."""

import functools
import re
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from conftest import relative_error

import pyode
from pyode.models import MLPField

A = np.array([[-0.1, -1.0], [1.0, -0.1]])


class Linear(eqx.Module):
    matrix: jax.Array

    def __call__(self, t, y):
        return y @ self.matrix.T


def test_unknown_solver_lists_choices():
    with pytest.raises(ValueError, match="choose one of euler, midpoint"):
        pyode.solve(Linear(jnp.asarray(A)), jnp.ones(2), t0=0.0, t1=1.0, solver="rk5", steps=4)


def test_unknown_adjoint_lists_choices():
    with pytest.raises(ValueError, match="checkpoint, backsolve, backsolve-seminorm"):
        pyode.check_options("dopri5", "adjoint-please", rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_tolerances_on_a_fixed_step_solver_are_refused(solver):
    with pytest.raises(ValueError, match="takes no tolerances"):
        pyode.check_options(solver, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "needs tolerances"),
        ({"rtol": 1e-3}, "needs both rtol and atol"),
        ({"rtol": 1e-3, "atol": 1e-3, "steps": 3}, "not both"),
        ({"dt": 0.1, "steps": 3}, "dt or steps, not both"),
        ({"steps": 0}, "at least 1"),
    ],
)
def test_impossible_combinations(options, message):
    with pytest.raises(ValueError, match=message):
        pyode.check_options("dopri5", **options)


def test_seminorm_needs_an_adaptive_solve():
    with pytest.raises(ValueError, match="adaptive"):
        pyode.check_options("rk4", "backsolve-seminorm", steps=4)


def test_adaptive_solve_matches_matrix_exponential():
    y0 = jnp.array([0.6, 0.3])
    ts = jnp.linspace(0.0, 5.0, 11)
    solution = pyode.solve(Linear(jnp.asarray(A)), y0, ts, solver="dopri5", rtol=1e-10, atol=1e-10)
    exact = np.stack([scipy.linalg.expm(A * t) @ np.asarray(y0) for t in np.asarray(ts)])
    assert solution.ys.shape == (11, 2)
    np.testing.assert_allclose(solution.ys, exact, rtol=1e-8, atol=1e-9)


def _fixed_step_error(solver, steps):
    y0 = jnp.array([0.6, 0.3])
    solution = pyode.solve(Linear(jnp.asarray(A)), y0, t0=0.0, t1=2.0, solver=solver, steps=steps)
    exact = scipy.linalg.expm(A * 2.0) @ np.asarray(y0)
    return float(np.max(np.abs(np.asarray(solution.final) - exact)))


class Riccati(eqx.Module):
    """dy/dt = -2 t y^2, solved by y(t) = 1 / (1 / y0 + t^2): nonlinear and time-dependent."""

    def __call__(self, t, y):
        return -2 * t * y**2


def _nonlinear_error(solver, steps):
    y0 = jnp.array([1.5])
    solution = pyode.solve(Riccati(), y0, t0=0.0, t1=2.0, solver=solver, steps=steps)
    return float(abs(solution.final[0] - 1 / (1 / 1.5 + 4.0)))


EXPLICIT_SOLVERS = sorted(name for name, spec in pyode.SOLVERS.items() if not spec.implicit)


@pytest.mark.parametrize("solver", EXPLICIT_SOLVERS)
def test_each_solver_has_its_claimed_order(solver):
    """Fit log(error) against log(dt) on a nonlinear ODE; the slope is the order of convergence."""
    order = pyode.SOLVERS[solver].order
    # step counts in the asymptotic regime but above round-off for each order
    # step counts past the pre-asymptotic regime and above round-off for each order; an
    # eighth-order method reaches round-off before its slope settles, so it gets more room
    steps = {1: [64, 128, 256], 2: [64, 128, 256], 3: [32, 64, 128], 4: [32, 64, 128], 5: [64, 128, 256]}.get(
        order, [8, 12, 16]
    )
    errors = np.array([_nonlinear_error(solver, int(n)) for n in steps])
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    upper = 0.3 if order < 8 else 1.5
    assert order - 0.3 < slope < order + upper, f"{solver}: slope {slope:.2f}, errors {errors}"


def test_rk4_is_fourth_order_against_expm():
    errors = [_fixed_step_error("rk4", n) for n in (10, 20, 40, 80)]
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    np.testing.assert_allclose(ratios, 16.0, rtol=0.1)


@pytest.mark.parametrize("solver", EXPLICIT_SOLVERS)
def test_forward_evaluation_count_matches_what_runs(solver):
    field = MLPField(2, width=8, key=jax.random.PRNGKey(1))
    y0 = jnp.ones((3, 2))
    spec = pyode.SOLVERS[solver]
    options = {"rtol": 1e-6, "atol": 1e-6} if spec.adaptive else {"steps": 7}
    with pyode.counting() as counts:
        solution = pyode.solve(field, y0, t0=0.0, t1=3.0, solver=solver, count_evaluations=True, **options)
        jax.block_until_ready(solution.ys)
    assert counts.forward == int(solution.nfe_forward)
    if not spec.adaptive:
        assert int(solution.nfe_forward) == spec.stages * 7


def test_implicit_solver_on_stiff_van_der_pol_matches_dopri5_and_counts_what_runs():
    """kvaerno5 (Newton's Jacobians in forward mode) gives dopri5's trajectory and gradient."""
    from pyode.models import VanDerPol

    y0, ts = jnp.array([[2.0, 0.0], [1.5, 1.0]]), jnp.linspace(0.0, 1.0, 4)

    def loss(field, solver):
        ys = pyode.solve(
            field, y0, ts, solver=solver, rtol=1e-9, atol=1e-9, max_steps=20_000, count_evaluations=True
        ).ys
        return jnp.sum(ys**2)

    with pyode.counting() as counts:
        value, grad = jax.block_until_ready(eqx.filter_value_and_grad(loss)(VanDerPol(10.0), "kvaerno5"))
    assert counts.forward > 7 * 10 and counts.backward == 0
    reference, reference_grad = eqx.filter_value_and_grad(loss)(VanDerPol(10.0), "dopri5")
    np.testing.assert_allclose(value, reference, rtol=1e-7)
    np.testing.assert_allclose(grad.theta, reference_grad.theta, rtol=1e-6)
    assert (
        int(pyode.solve(VanDerPol(10.0), y0, ts, solver="kvaerno5", rtol=1e-6, atol=1e-6).nfe_forward) == -1
    )
    with pytest.raises(ValueError, match="implicit"):
        pyode.solve(VanDerPol(10.0), y0, ts, solver="kvaerno5", steps=10)


def _mlp_loss(field, adjoint, y0, ts, cotangent, tol, count_evaluations=None):
    solution = pyode.solve(
        field,
        y0,
        ts,
        solver="dopri5",
        adjoint=adjoint,
        rtol=tol,
        atol=tol,
        count_evaluations=count_evaluations,
    )
    return jnp.sum(solution.ys * cotangent)


def _central_differences(loss, params, static, eps=1e-6):
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    loss_of_flat = jax.jit(lambda v: loss(eqx.combine(unravel(v), static)))
    grads = np.zeros(flat.shape)
    for i in range(flat.size):
        step = jnp.zeros_like(flat).at[i].set(eps)
        grads[i] = (loss_of_flat(flat + step) - loss_of_flat(flat - step)) / (2 * eps)
    return grads


@pytest.fixture(scope="module")
def small_problem():
    import jax.flatten_util  # noqa: F401

    key_field, key_y, key_c = jax.random.split(jax.random.PRNGKey(3), 3)
    field = MLPField(2, width=5, activation="tanh", time_input=True, key=key_field)
    y0 = jax.random.normal(key_y, (3, 2))
    ts = jnp.array([0.0, 0.4, 1.0])
    cotangent = jax.random.normal(key_c, (3, 3, 2))
    return field, y0, ts, cotangent


@pytest.mark.parametrize("adjoint", pyode.ADJOINTS)
def test_gradients_agree_with_central_differences(small_problem, adjoint):
    field, y0, ts, cotangent = small_problem
    params, static = eqx.partition(field, eqx.is_inexact_array)
    grads = eqx.filter_jit(eqx.filter_grad(lambda f: _mlp_loss(f, adjoint, y0, ts, cotangent, 1e-12)))(field)
    flat_grads, _ = jax.flatten_util.ravel_pytree(eqx.filter(grads, eqx.is_inexact_array))
    reference = _central_differences(
        lambda f: _mlp_loss(f, "checkpoint", y0, ts, cotangent, 1e-12), params, static
    )
    assert relative_error(flat_grads, jnp.asarray(reference)) < 1e-6


def test_seminorm_takes_fewer_backward_evaluations(small_problem):
    """Against `backsolve`'s largest-part norm (as torchdiffeq's), leaving the parameters' adjoint out of the
    error can only allow longer steps: at 1e-10 the seminorm saves evaluations (docs/bench.md)."""
    field, y0, ts, cotangent = small_problem
    counts_by_method = {}
    for adjoint in ("backsolve", "backsolve-seminorm"):
        with pyode.counting() as counts:
            loss = functools.partial(
                _mlp_loss,
                adjoint=adjoint,
                y0=y0,
                ts=ts,
                cotangent=cotangent,
                tol=1e-10,
                count_evaluations=True,
            )
            grads = eqx.filter_grad(loss)(field)
            jax.block_until_ready(grads)
        counts_by_method[adjoint] = counts.backward
    print("backward evaluations:", counts_by_method)
    assert 0 < counts_by_method["backsolve-seminorm"] < counts_by_method["backsolve"], counts_by_method


def test_backsolve_controls_every_part_of_the_backward_error():
    parts = (jnp.ones(2), jnp.full(2, 3.0), {"w": jnp.full(100, 0.5)}, None)
    assert pyode.largest_part_norm(parts) == 3.0
    assert pyode.largest_part_norm((jnp.ones(2), jnp.ones(2), {"w": jnp.full(100, 7.0)}, None)) == 7.0


def test_checkpoint_backward_count_is_one_vjp_per_forward_evaluation():
    field = MLPField(2, width=8, key=jax.random.PRNGKey(1))
    y0 = jnp.ones((4, 2))

    def loss(f):
        solution = pyode.solve(f, y0, t0=0.0, t1=1.0, solver="rk4", steps=5, count_evaluations=True)
        return jnp.sum(solution.final)

    with pyode.counting() as counts:
        jax.block_until_ready(eqx.filter_grad(loss)(field))
    assert counts.backward == 4 * 5


def test_default_solve_counts_nothing_and_counting_is_asked_for():
    """The default solve is bare; `count_evaluations=True`, or tracing inside `counted_programs`,
    counts every evaluation. All three give the same answer and the same `nfe_forward`."""
    field = MLPField(2, width=8, key=jax.random.PRNGKey(1))
    y0 = jnp.ones((4, 2))
    options = {"t0": 0.0, "t1": 1.0, "solver": "dopri5", "rtol": 1e-6, "atol": 1e-6}
    # the counts are read right after each block: they run on while later blocks count
    with pyode.counting() as counts:
        bare = pyode.solve(field, y0, **options)
        jax.block_until_ready(bare.ys)
    assert (counts.forward, counts.backward) == (0, 0)
    with pyode.counting() as counts:
        off = pyode.solve(field, y0, count_evaluations=False, **options)
        jax.block_until_ready(off.ys)
    assert counts.forward == 0
    with pyode.counting() as counts:
        counted = pyode.solve(field, y0, count_evaluations=True, **options)
        jax.block_until_ready(counted.ys)
    assert int(counted.nfe_forward) > 0 and counts.forward == int(counted.nfe_forward)
    with pyode.counted_programs(), pyode.counting() as counts:
        traced = pyode.solve(field, y0, **options)
        jax.block_until_ready(traced.ys)
    assert counts.forward == int(counted.nfe_forward)
    for solution in (off, counted, traced):
        np.testing.assert_array_equal(solution.ys, bare.ys)
        assert int(solution.nfe_forward) == int(bare.nfe_forward)


def test_failed_solve_without_throw_returns_its_status():
    """Out of steps: with throw=False the solve returns a non-zero status naming max steps;
    by default it raises."""
    field = MLPField(2, width=8, key=jax.random.PRNGKey(1))
    y0 = jnp.ones((3, 2))
    options = {"t0": 0.0, "t1": 3.0, "solver": "dopri5", "rtol": 1e-10, "atol": 1e-10, "max_steps": 3}
    failed = pyode.solve(field, y0, throw=False, **options)
    status = int(failed.status)
    assert status != 0
    assert pyode.STATUS_MESSAGES[status] == "max_steps_reached"
    assert re.search(r"max(imum number of solver)?[ _]steps", pyode.status_message(status), re.IGNORECASE)
    assert int(failed.num_steps) == 3
    succeeded = pyode.solve(field, y0, throw=False, **dict(options, max_steps=4096))
    assert int(succeeded.status) == 0 and pyode.status_message(0) == "successful"
    with pytest.raises(RuntimeError, match="max_steps|maximum number of solver steps"):
        jax.block_until_ready(pyode.solve(field, y0, **options).ys)


def _rotation(t, y):
    return jnp.stack([y[1], -y[0]])


@pytest.mark.parametrize("solver", ["dopri8", "kvaerno5"])
def test_stepping_onto_save_times_avoids_the_interpolation_error(solver):
    """Between steps dopri8 and kvaerno5 interpolate far less accurately than they step (docs/solve.md)."""
    ts = jnp.linspace(0.0, 10.0, 41)
    exact = np.stack([np.sin(ts), np.cos(ts)], axis=1)
    errors = {}
    for on_saves in (False, True):
        ys = pyode.solve(
            _rotation,
            jnp.array([0.0, 1.0]),
            ts,
            solver=solver,
            rtol=1e-11,
            atol=1e-11,
            max_steps=100_000,
            steps_at_save_times=on_saves,
        ).ys
        errors[on_saves] = np.abs(np.asarray(ys) - exact).max(axis=1)
    assert errors[False][1:-1].max() > 10 * errors[False][-1]
    assert errors[True][1:-1].max() < 3 * errors[True][-1]
    assert errors[True][1:-1].max() < errors[False][1:-1].max() / 10


def test_a_reverse_time_solve_takes_a_positive_dt():
    backward = pyode.solve(_rotation, jnp.array([0.0, 1.0]), t0=1.0, t1=0.0, solver="rk4", dt=0.01)
    np.testing.assert_allclose(backward.final, [np.sin(-1.0), np.cos(-1.0)], rtol=1e-8)


def test_a_plain_function_field_is_solved_and_counted():
    """A closure over the differentiated value is made an explicit argument of the counter's VJP."""

    def loss(a, counted):
        options = dict(t0=0.0, t1=1.0, solver="rk4", steps=4, count_evaluations=counted)
        return pyode.solve(lambda t, y: -a * y, jnp.ones(2), **options).final.sum()

    with pyode.counting() as counts:
        grad = jax.block_until_ready(jax.grad(loss)(1.0, True))
    np.testing.assert_allclose(grad, jax.grad(loss)(1.0, False), rtol=1e-12)
    np.testing.assert_allclose(grad, -2 * np.exp(-1.0), rtol=1e-3)
    assert counts.backward == 16


def test_a_state_less_precise_than_the_field_is_named():
    field = MLPField(2, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="y0 is float32 but the field's parameters include float64"):
        pyode.solve(field, jnp.ones(2, jnp.float32), t0=0.0, t1=1.0, solver="rk4", steps=2)


def test_float64_input_without_x64_warns():
    code = (
        "import warnings, numpy as np, pyode\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    pyode.solve(lambda t, y: -y, np.ones(2), t0=0.0, t1=1.0, solver='rk4', steps=2)\n"
        "print([str(x.message) for x in w])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "y0 is float64 but JAX's 64-bit mode is off" in out


@pytest.mark.parametrize(
    "options",
    [
        {"solver": "rk4", "dt": 0.1},
        {"solver": "dopri5", "rtol": 1e-8, "atol": 1e-8},
    ],
    ids=["dt", "adaptive"],
)
def test_solves_under_jit_and_vmap_with_concrete_save_times_equal_the_eager_ones(options):
    ts = np.linspace(0.0, 1.0, 4)
    y0s = jnp.array([[0.0, 1.0], [1.0, 0.5]])

    def path(y0):
        return pyode.solve(_rotation, y0, ts, **options).ys

    eager = np.stack([path(y0) for y0 in y0s])
    np.testing.assert_allclose(jax.jit(path)(y0s[0]), eager[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jax.jit(jax.vmap(path))(y0s), eager, rtol=1e-12, atol=1e-14)


def test_traced_times_with_dt_need_max_steps_and_the_error_says_so():
    ts = np.linspace(0.0, 1.0, 4)
    y0 = jnp.array([0.0, 1.0])

    def path(ts, **max_steps):
        return pyode.solve(_rotation, y0, ts, solver="rk4", dt=0.1, **max_steps).ys

    needs = re.escape("pass max_steps=N with N at least ceil(|t1 - t0| / dt) + 1")
    with pytest.raises(ValueError, match=needs):
        jax.jit(path)(ts)
    with pytest.raises(ValueError, match="times .* are traced"):
        jax.jit(lambda t1: pyode.solve(_rotation, y0, t0=0.0, t1=t1, solver="rk4", dt=0.1).final)(1.0)
    traced = jax.jit(functools.partial(path, max_steps=11))(ts)
    np.testing.assert_allclose(traced, path(ts), rtol=1e-12, atol=1e-14)
