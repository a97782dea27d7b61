"""One place that maps solver and gradient-method names to Diffrax, and counts evaluations."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._counting import counted, counted_evaluations


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

    def forward_evaluations(self, num_steps: Int[Array, ""]) -> Int[Array, ""]:
        """Vector-field evaluations of a forward solve of `num_steps` (accepted + rejected) steps.

        -1 for an implicit solver: its Newton iterations are not in Diffrax's statistics
        (count them with `pyode.counting`).
        """
        if self.implicit:
            return jnp.asarray(-1)
        if self.fsal:
            return 1 + (self.stages - 1) * num_steps
        return self.stages * num_steps


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

ADJOINTS = ("checkpoint", "backsolve", "backsolve-seminorm")


class Solution(eqx.Module):
    """The result of `solve`: states at the save times and what the solve cost."""

    ts: Float[Array, " time"]
    ys: Float[Array, "time ..."]
    num_steps: Int[Array, ""]
    num_rejected_steps: Int[Array, ""]
    nfe_forward: Int[Array, ""]

    @property
    def final(self) -> Float[Array, "..."]:
        """The state at the last save time."""
        return self.ys[-1]


def _choose(name: str, kind: str, choices) -> None:
    if name not in choices:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {', '.join(choices)}")


def check_options(
    solver: str,
    adjoint: str = "checkpoint",
    *,
    rtol: float | None = None,
    atol: float | None = None,
    dt: float | None = None,
    steps: int | None = None,
) -> None:
    """Raise a clear ValueError if this combination of options cannot be solved."""
    _choose(solver, "solver", SOLVERS)
    _choose(adjoint, "gradient method", ADJOINTS)
    spec = SOLVERS[solver]
    adaptive = rtol is not None or atol is not None
    fixed = dt is not None or steps is not None
    if adaptive and fixed:
        raise ValueError("give either tolerances (rtol, atol) or a fixed step (dt or steps), not both")
    if dt is not None and steps is not None:
        raise ValueError("give either dt or steps, not both")
    if adaptive and (rtol is None or atol is None):
        raise ValueError("an adaptive solve needs both rtol and atol")
    if adaptive and not spec.adaptive:
        adaptive_names = [name for name, s in SOLVERS.items() if s.adaptive]
        raise ValueError(
            f"solver {solver!r} has no error estimate and takes no tolerances; give dt or steps, "
            f"or choose an adaptive solver: {', '.join(adaptive_names)}"
        )
    if spec.implicit and fixed:
        raise ValueError(
            f"solver {solver!r} is implicit: give rtol and atol (its Newton iterations use them)"
        )
    if not adaptive and not fixed:
        raise ValueError(f"solver {solver!r} needs tolerances (rtol, atol) or a fixed step (dt or steps)")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if dt is not None and dt <= 0:
        raise ValueError(f"dt must be positive, got {dt}")
    if adjoint == "backsolve-seminorm" and not adaptive:
        raise ValueError("backsolve-seminorm changes only the error norm of an adaptive backward solve")


CHECKPOINTS = 64
"""States `checkpoint` keeps for the backward pass (Diffrax's RecursiveCheckpointAdjoint):
a solve of up to this many steps is never recomputed; longer ones recompute steps between
checkpoints. Against Diffrax's own default (None: placed online for up to max_steps), the
spiral classifier's training step went from 1.70 to 1.58 ms here (docs/bench.md)."""


def _adjoint(adjoint: str, rtol, atol, dt, steps) -> diffrax.AbstractAdjoint:
    if adjoint == "checkpoint":
        return diffrax.RecursiveCheckpointAdjoint(checkpoints=CHECKPOINTS)
    if rtol is None:
        return diffrax.BacksolveAdjoint()
    norm = {"norm": diffrax.adjoint_rms_seminorm} if adjoint == "backsolve-seminorm" else {}
    return diffrax.BacksolveAdjoint(stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, **norm))


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
    max_steps: int = 4096,
    count_evaluations: bool = True,
) -> Solution:
    """Integrate dy/dt = field(t, y) (or field(t, y, args)) from t0 to t1.

    `ts` are the save times (the first is t0 unless t0 is given); without `ts`, only the
    state at t1 is saved. The field must be a pytree (an Equinox module) so that its
    parameters are differentiated by the chosen gradient method:

    - solvers: euler, midpoint, heun, rk4, bosh3, tsit5, dopri5, dopri8, and the implicit
      kvaerno5 (an ESDIRK method for stiff problems, its Newton tolerances the controller's);
      adaptive with `rtol` and `atol`, or fixed with `dt` or `steps` over [t0, t1];
    - `adjoint`: `checkpoint` (backprop through the solver), `backsolve` (continuous
      adjoint) or `backsolve-seminorm` (its backward error measured on the state and
      adjoint only, Kidger, Chen & Lyons 2021).

    `nfe_forward` is the forward count from the solver's step statistics (checked against a
    real count in the tests). With `count_evaluations` (the default) every evaluation and
    vector-Jacobian product also reports to `pyode.counting`, which is how backward counts
    are measured; turn it off to time the bare solve. An implicit solver differentiates the
    field in forward mode (Newton's Jacobians), which a custom VJP forbids: its evaluations are
    counted as executed (JVPs included) and all reported as forward (`counted_evaluations`).
    """
    check_options(solver, adjoint, rtol=rtol, atol=atol, dt=dt, steps=steps)
    spec = SOLVERS[solver]
    if ts is not None:
        ts = jnp.asarray(ts)
        t0 = ts[0] if t0 is None else t0
        t1 = ts[-1] if t1 is None else t1
        saveat = diffrax.SaveAt(ts=ts)
    else:
        if t0 is None or t1 is None:
            raise ValueError("give save times ts, or both t0 and t1")
        saveat = diffrax.SaveAt(t1=True)
    if rtol is not None:
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
        dt0 = None
    else:
        controller = diffrax.ConstantStepSize()
        dt0 = dt if dt is not None else (t1 - t0) / steps
    params, static = eqx.partition((field, args), eqx.is_inexact_array)

    def evaluate(t, y, p):
        return _evaluate(t, y, eqx.combine(p, static), args is not None)

    if not count_evaluations:
        vector_field = evaluate
    else:
        vector_field = counted_evaluations(evaluate) if spec.implicit else counted(evaluate)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        spec.make(),
        t0,
        t1,
        dt0,
        y0,
        args=params,
        saveat=saveat,
        stepsize_controller=controller,
        adjoint=_adjoint(adjoint, rtol, atol, dt, steps),
        max_steps=max_steps if rtol is not None else _fixed_max_steps(t0, t1, dt, steps),
    )
    num_steps = solution.stats["num_steps"]
    return Solution(
        ts=solution.ts,
        ys=solution.ys,
        num_steps=num_steps,
        num_rejected_steps=solution.stats["num_rejected_steps"],
        nfe_forward=spec.forward_evaluations(num_steps),
    )


def _evaluate(t, y, field_and_args, takes_args: bool):
    field, args = field_and_args
    return field(t, y, args) if takes_args else field(t, y)


def _fixed_max_steps(t0, t1, dt, steps) -> int:
    if steps is not None:
        return steps
    return int(np.ceil(abs(float(t1) - float(t0)) / dt)) + 1
