"""One place that maps solver and gradient-method names to Diffrax, and counts evaluations."""

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._counting import counted, counted_evaluations, counting_traced
from ._names import check_options


class RK4(diffrax.AbstractERK):
    """The classic fourth-order Runge–Kutta method (fixed step only; Diffrax has none)."""

    tableau = diffrax.ButcherTableau(
        c=np.array([0.5, 0.5, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    )
    interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        return 4


@dataclass(frozen=True)
class SolverSpec:
    """What pyode needs to know of a solver: how to build it and what one step costs."""

    make: Callable[[], diffrax.AbstractSolver]
    order: int
    stages: int
    fsal: bool
    adaptive: bool
    implicit: bool = False

    def forward_evaluations(self, num_steps: Int[Array, ""], selection: int = 0) -> Int[Array, ""]:
        """Vector-field evaluations of a forward solve of `num_steps` (accepted + rejected) steps,
        after `selection` evaluations that chose its first step.

        -1 for an implicit solver: its Newton iterations are not in Diffrax's statistics
        (count them with `pyode.counting`).
        """
        if self.implicit:
            return jnp.asarray(-1)
        if self.fsal:
            return selection + 1 + (self.stages - 1) * num_steps
        return selection + self.stages * num_steps


SOLVERS: dict[str, SolverSpec] = {
    "euler": SolverSpec(diffrax.Euler, order=1, stages=1, fsal=False, adaptive=False),
    "midpoint": SolverSpec(diffrax.Midpoint, order=2, stages=2, fsal=False, adaptive=True),
    "heun": SolverSpec(diffrax.Heun, order=2, stages=2, fsal=False, adaptive=True),
    "rk4": SolverSpec(RK4, order=4, stages=4, fsal=False, adaptive=False),
    "bosh3": SolverSpec(diffrax.Bosh3, order=3, stages=4, fsal=True, adaptive=True),
    "tsit5": SolverSpec(diffrax.Tsit5, order=5, stages=7, fsal=True, adaptive=True),
    "dopri5": SolverSpec(diffrax.Dopri5, order=5, stages=7, fsal=True, adaptive=True),
    "dopri8": SolverSpec(diffrax.Dopri8, order=8, stages=14, fsal=True, adaptive=True),
    "kvaerno5": SolverSpec(diffrax.Kvaerno5, order=5, stages=7, fsal=True, adaptive=True, implicit=True),
}

_FAILURES = (
    "max_steps_reached",
    "dt_min_reached",
    "max_steps_rejected",
    "nonfinite",
    "nonlinear_max_steps_reached",
    "nonlinear_divergence",
    "singular",
    "breakdown",
    "stagnation",
    "conlim",
    "nonfinite_input",
    "internal_error",
)
STATUS_MESSAGES: tuple[str, ...] = ("successful",) + tuple(
    name for name in _FAILURES if hasattr(diffrax.RESULTS, name)
)
"""`Solution.status` indexes this: 0 is success, anything else names why the solve stopped."""


def status_message(status: int) -> str:
    """What a `Solution.status` code means, in Diffrax's words."""
    name = STATUS_MESSAGES[int(status)]
    return f"{name}: {diffrax.RESULTS[getattr(diffrax.RESULTS, name)]}" if status else name


def _status(result) -> Int[Array, ""]:
    code = jnp.asarray(0)
    for index, name in enumerate(STATUS_MESSAGES[1:], start=1):
        code = jnp.where(result == getattr(diffrax.RESULTS, name), index, code)
    return code


class Solution(eqx.Module):
    """The result of `solve`: states at the save times, what the solve cost, and whether it succeeded."""

    ts: Float[Array, " time"]
    ys: Float[Array, "time ..."]
    num_steps: Int[Array, ""]
    num_rejected_steps: Int[Array, ""]
    nfe_forward: Int[Array, ""]
    status: Int[Array, ""]
    """0 when the solve reached t1; otherwise an index into `STATUS_MESSAGES` (only with throw=False)."""

    @property
    def final(self) -> Float[Array, "..."]:
        """The state at the last save time."""
        return self.ys[-1]


ADAPTIVE_MAX_STEPS = 4096
"""An adaptive solve's step budget unless `max_steps` is given."""

CHECKPOINTS = 64
"""States `checkpoint` keeps for the backward pass (Diffrax's RecursiveCheckpointAdjoint):
a solve of up to this many steps is never recomputed; longer ones recompute steps between
checkpoints. Against Diffrax's own default (None: placed online for up to max_steps), the
spiral classifier's training step went from 1.70 to 1.58 ms here (docs/bench.md)."""


def largest_part_norm(parts: tuple) -> Float[Array, ""]:
    """The backward solve's error norm for `backsolve`: the largest of the RMS norms of the state, its
    adjoint and the parameters' adjoint, as torchdiffeq's `odeint_adjoint` measures it.

    Diffrax's default, one RMS over all of them, lets a network's many parameter entries dilute
    the state's error: on a 17,282-parameter field it took 42% fewer steps than this norm at
    1e-10 but its dL/dy0 was 4.7x less accurate at 1e-6 (docs/bench.md, "Seminorms").
    """
    y, a_y, a_args, _ = parts
    return jnp.maximum(jnp.maximum(_rms(y), _rms(a_y)), _rms(a_args))


def _rms(tree) -> Float[Array, ""]:
    """Root mean square over every entry of a pytree's arrays (0 for none)."""
    leaves = [jnp.ravel(leaf) for leaf in jax.tree_util.tree_leaves(tree)]
    return jnp.sqrt(jnp.mean(jnp.square(jnp.concatenate(leaves)))) if leaves else jnp.zeros(())


def _adjoint(adjoint: str, rtol, atol, dt, steps) -> diffrax.AbstractAdjoint:
    if adjoint == "checkpoint":
        return diffrax.RecursiveCheckpointAdjoint(checkpoints=CHECKPOINTS)
    if rtol is None:
        return diffrax.BacksolveAdjoint()
    norm = {
        "backsolve": largest_part_norm,
        "backsolve-seminorm": diffrax.adjoint_rms_seminorm,
        "backsolve-rms": _rms,
    }[adjoint]
    return diffrax.BacksolveAdjoint(
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, norm=norm)
    )


def solve(
    field: Callable[..., Any],
    y0: Float[Array, "..."],
    ts: Float[Array, " time"] | None = None,
    *,
    t0: float | None = None,
    t1: float | None = None,
    args: Any = None,
    solver: str = "dopri5",
    adjoint: str = "checkpoint",
    rtol: float | None = None,
    atol: float | None = None,
    dt: float | None = None,
    steps: int | None = None,
    max_steps: int | None = None,
    first_step: float | None = None,
    steps_at_save_times: bool = False,
    count_evaluations: bool | None = None,
    throw: bool = True,
) -> Solution:
    """Integrate dy/dt = field(t, y) (or field(t, y, args)) from t0 to t1.

    `ts` are the save times (the first is t0 unless t0 is given); without `ts`, only the
    state at t1 is saved. The field must be a pytree (an Equinox module) so that its
    parameters are differentiated by the chosen gradient method:

    - solvers: euler, midpoint, heun, rk4, bosh3, tsit5, dopri5, dopri8, and the implicit
      kvaerno5 (an ESDIRK method for stiff problems, its Newton tolerances the controller's);
      adaptive with `rtol` and `atol`, or fixed with `dt` or `steps` over [t0, t1];
    - `max_steps`: an adaptive solve's step budget (`ADAPTIVE_MAX_STEPS` by default). A solve
      with `dt` counts its own steps when t0 and t1 (or the save times) are concrete (Python
      numbers, NumPy arrays, or arrays closed over under `jax.jit` and `jax.vmap`); when they
      are traced it needs `max_steps`, at least the number of steps of `dt` between them;
    - `adjoint`: `checkpoint` (backprop through the solver), `backsolve` (continuous
      adjoint; its backward error the largest part's, `largest_part_norm`) or
      `backsolve-seminorm` (its backward error measured on the state and adjoint only,
      Kidger, Chen & Lyons 2021) or `backsolve-rms` (Diffrax's default: one RMS over every
      part, which a network's many parameter entries dilute);
    - `first_step`: an adaptive solve's first step; by default chosen by Hairer's rule from two
      evaluations (`_initial_step`: Diffrax 0.7.2's own choice is always 0.01);
    - `steps_at_save_times`: an adaptive solve steps onto every save time (Diffrax's
      `step_ts`) instead of interpolating between steps. Interpolation is cheaper but less
      accurate than the steps themselves: at tolerance 1e-11 dopri8's and kvaerno5's states
      at save times between steps were 10-1000x less accurate than at t1 (docs/solve.md).

    t1 may precede t0 (a backward solve), with tolerances, `steps` or a positive `dt`.

    `nfe_forward` is the forward count from the solver's step statistics (checked against a
    real count in the tests), free of cost. It misses one evaluation for each rejected try of
    an FSAL solver's first step: Diffrax re-evaluates the first stage until a first step is
    accepted, which the statistics cannot tell apart from later rejections (measured on the
    spiral classifier: 14 steps, 1 rejected, 87 from the statistics, 88 counted).

    With `count_evaluations` every evaluation and vector-Jacobian product also reports to
    `pyode.counting` through a host callback, which is how backward counts are measured; it
    costs about 60 us an evaluation, so the default (None) is the bare solve unless traced
    inside `pyode.counted_programs()`. With
    `throw=False` a failed solve (too many steps, step size underflow) returns with `status`
    set instead of raising, and the compiled program holds no host callback (JAX's persistent
    compilation cache can then store it). An implicit solver differentiates the
    field in forward mode (Newton's Jacobians), which a custom VJP forbids: its evaluations are
    counted as executed (JVPs included) and all reported as forward (`counted_evaluations`).
    """
    check_options(solver, adjoint, rtol=rtol, atol=atol, dt=dt, steps=steps)
    spec = SOLVERS[solver]
    _check_dtypes(y0, (field, args))
    time = _time_dtype(y0)
    if ts is None and (t0 is None or t1 is None):
        raise ValueError("give save times ts, or both t0 and t1")
    if ts is not None:
        t0 = ts[0] if t0 is None else t0
        t1 = ts[-1] if t1 is None else t1
        ts = jnp.asarray(ts, time)
    saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=ts)
    if rtol is not None:
        max_steps = ADAPTIVE_MAX_STEPS if max_steps is None else max_steps
    elif steps is not None:
        max_steps = steps
    else:
        max_steps = _fixed_step_budget(t0, t1, dt=dt, max_steps=max_steps)
    t0, t1 = jnp.asarray(t0, time), jnp.asarray(t1, time)
    if rtol is not None:
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
        if steps_at_save_times and ts is not None:
            controller = diffrax.ClipStepSizeController(controller, step_ts=ts)
    else:
        controller = diffrax.ConstantStepSize()
        dt0 = jnp.where(t1 < t0, -dt, dt) if dt is not None else (t1 - t0) / steps
    params, static = eqx.partition((field, args), eqx.is_inexact_array)

    def evaluate(t, y, p):
        return _evaluate(t, y, eqx.combine(p, static), args is not None)

    if count_evaluations is None:
        count_evaluations = counting_traced()
    if count_evaluations:
        evaluate, params = _explicit_parameters(evaluate, jnp.asarray(y0), params)
        evaluate = counted_evaluations(evaluate) if spec.implicit else counted(evaluate)
    selection = 0
    if rtol is not None and first_step is None:
        dt0, selection = (
            _initial_step(evaluate, t0, t1, jnp.asarray(y0), params, rtol, atol, spec.order + 1),
            2,
        )
    elif rtol is not None:
        dt0 = jnp.where(t1 < t0, -first_step, first_step)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(evaluate),
        spec.make(),
        t0,
        t1,
        dt0,
        y0,
        args=params,
        saveat=saveat,
        stepsize_controller=controller,
        adjoint=_adjoint(adjoint, rtol, atol, dt, steps),
        max_steps=max_steps,
        throw=throw,
    )
    num_steps = solution.stats["num_steps"]
    return Solution(
        ts=solution.ts,
        ys=solution.ys,
        num_steps=num_steps,
        num_rejected_steps=solution.stats["num_rejected_steps"],
        nfe_forward=spec.forward_evaluations(num_steps, selection),
        status=_status(solution.result),
    )


def _initial_step(evaluate, t0, t1, y0, params, rtol, atol, error_order):
    """The first step of an adaptive solve by Hairer, Norsett & Wanner's rule (Solving ODEs I, II.4),
    as torchdiffeq and Diffrax's own `_select_initial_step` compute it, from two evaluations.

    Diffrax 0.7.2 never runs its own selection for a plain ODE: `diffeqsolve` hands the step
    size controller a `WrapTerm`, which fails its `isinstance(terms, ODETerm)` check, so every
    adaptive solve started at 0.01 (on the spiral classifier: three steps where two do).
    The step is not differentiated (as in Diffrax and torchdiffeq).
    """
    direction = jnp.where(t1 < t0, -1.0, 1.0).astype(t0.dtype)

    scale = atol + jnp.abs(y0) * rtol
    f0 = evaluate(t0, y0, params)
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / jnp.where(d1 < 1e-5, 1.0, d1))
    f1 = evaluate(t0 + direction * h0, y0 + direction * h0 * f0, params)
    d2 = _rms((f1 - f0) / scale) / h0
    largest = jnp.maximum(d1, d2)
    h1 = jnp.where(
        largest <= 1e-15,
        jnp.maximum(1e-6, h0 * 1e-3),
        (0.01 / jnp.where(largest <= 1e-15, 1.0, largest)) ** (1 / error_order),
    )
    return jax.lax.stop_gradient(direction * jnp.minimum(100 * h0, h1).astype(t0.dtype))


def _explicit_parameters(evaluate, y0, params):
    """`evaluate` with every traced value it closes over (a plain function's captured arrays) made an
    argument beside `params`, as the counter's custom VJP needs to differentiate them."""
    probe_t = jnp.zeros((), jnp.result_type(float))
    converted, captured = jax.closure_convert(evaluate, probe_t, y0, params)

    def explicit(t, y, params_and_captured):
        params, captured = params_and_captured
        return converted(jnp.asarray(t, probe_t.dtype), y, params, *captured)

    return explicit, (params, captured)


def _time_dtype(y0):
    """Times in the state's floating dtype, so that a float32 state stays float32 under 64-bit mode."""
    state = jnp.result_type(y0)
    return state if jnp.issubdtype(state, jnp.floating) else None


def _check_dtypes(y0, field_and_args) -> None:
    """Refuse a state less precise than the field's parameters; warn of float64 silently made float32."""
    if isinstance(y0, np.ndarray) and y0.dtype == np.float64 and not jax.config.jax_enable_x64:
        warnings.warn(
            "y0 is float64 but JAX's 64-bit mode is off, so the solve runs in float32; "
            "call jax.config.update('jax_enable_x64', True) first to solve in float64",
            stacklevel=3,
        )
    state = jnp.result_type(y0)
    wider = sorted(
        {
            str(leaf.dtype)
            for leaf in jax.tree_util.tree_leaves(eqx.filter(field_and_args, eqx.is_inexact_array))
            if jnp.promote_types(leaf.dtype, state) != state
        }
    )
    if wider:
        raise ValueError(
            f"y0 is {state} but the field's parameters include {', '.join(wider)} arrays; give y0 in "
            f"{wider[-1]} or cast the field's arrays to {state}"
        )


def _evaluate(t, y, field_and_args, takes_args: bool):
    field, args = field_and_args
    return field(t, y, args) if takes_args else field(t, y)


def _concrete(value) -> np.ndarray | None:
    """`value` as a NumPy array when it is known while tracing (a Python number, a NumPy array, an
    array closed over under `jax.jit` or `jax.vmap`); None when it is traced."""
    try:
        return np.asarray(value)
    except jax.errors.TracerArrayConversionError:
        return None


def _fixed_step_budget(t0, t1, *, dt: float, max_steps: int | None) -> int:
    """Steps of `dt` from t0 to t1 (one spare), counted in Python when both times are concrete;
    otherwise `max_steps`, which must then be given."""
    start, end = _concrete(t0), _concrete(t1)
    if start is not None and end is not None:
        return int(np.ceil(abs(float(end) - float(start)) / dt * (1 + 1e-9))) + 1
    if max_steps is None:
        raise ValueError(
            f"the solve's times (t0 and t1, or the save times ts) are traced (passed as arguments to "
            f"a jax.jit or jax.vmap function), so its steps of dt={dt} cannot be counted: pass "
            f"max_steps=N with N at least ceil(|t1 - t0| / dt) + 1, or close over concrete times "
            f"(a NumPy array) instead"
        )
    return max_steps
