"""One place that maps SDE solver, Brownian-path and gradient-method names to Diffrax.

An SDE dy = f(t, y) dt + g(t, y) dW with diagonal noise (g(t, y) has y's shape and
multiplies dW elementwise) is solved as `diffrax.MultiTerm(ODETerm(f), ControlTerm(g, W))`
at a fixed step. The Brownian path W is Diffrax's `VirtualBrownianTree` (the same path
whatever the steps asked of it), its `UnsafeBrownianPath` (fresh increments, cheaper), or
`GridBrownianPath`: given values on a time grid, so that another library can be handed the
very same increments.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax
from jaxtyping import Array, Float, PRNGKeyArray

from ._names import BROWNIAN_PATHS
from ._solve import Solution, _fixed_step_budget, _status


class _BatchItoMilstein(diffrax.AbstractItoSolver):
    """Diffrax's `ItoMilstein` step for diagonal noise on a batch of independent paths, in linear cost.

    With g the diagonal of the noise, Diffrax's step (commutative-noise Milstein) is
    y1 = y0 + f dt + g * dW + 1/2 sum_j g_j d_j g_i (dW_j dW_i - dt [i = j]), that is
    y1 = y0 + f dt + g * dW + 1/2 (dW * J (g * dW) - dt g * diag J), J the Jacobian of g.
    Diffrax builds the noise matrix, dW dW^T and the third-order tensor g_k d_k g_ij for the whole
    (flattened) state: m^3 numbers for m = paths x dim (4000 one-dimensional paths asked for 512 GB
    in float64). Here J (g * dW) is one Jacobian-vector product, and diag J is `path_size` of them,
    one per coordinate of a path, each probing that coordinate of every path at once: exact when a
    path's diffusion does not depend on another path's state (a batch: `solve_sde` takes y0's last
    axis as a path and the leading axes as paths), which is all a batch can be. Within a path, J is
    used whole, as Diffrax does.
    """

    path_size: int = eqx.field(static=True, default=1)
    term_structure: ClassVar = diffrax.MultiTerm[tuple[diffrax.AbstractTerm, diffrax.AbstractTerm]]
    interpolation_cls: ClassVar = diffrax.LocalLinearInterpolation

    def order(self, terms):
        raise ValueError("Milstein should not be used to solve ODEs.")

    def strong_order(self, terms):
        return 1  # assuming commutative noise, as Diffrax's ItoMilstein does

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        drift, diffusion = terms.terms
        dt = drift.contr(t0, t1)
        dw = diffusion.contr(t0, t1)
        f0_prod = drift.vf_prod(t0, y0, args, dt)
        ones = jnp.ones_like(dw)
        g0, jvp = jax.linearize(lambda y: diffusion.prod(diffusion.vf(t0, y, args), ones), y0)
        g0_prod = g0 * dw
        probes = jnp.eye(self.path_size, dtype=y0.dtype)  # coordinate k of every path
        probes = jnp.broadcast_to(
            probes[:, None, :], (self.path_size, y0.size // self.path_size, self.path_size)
        )
        probes = probes.reshape(self.path_size, -1)
        diagonal = jnp.sum(probes * jax.vmap(jvp)(probes), axis=0)
        v0_prod = dw * jvp(g0_prod) - dt * g0 * diagonal
        y1 = y0 + f0_prod + g0_prod + 0.5 * v0_prod
        return y1, None, dict(y0=y0, y1=y1), None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        drift, diffusion = terms.terms
        return drift.vf(t0, y0, args), diffusion.vf(t0, y0, args)


@dataclass(frozen=True)
class SDESolverSpec:
    """An SDE solver: how to build it (given a path's size), which calculus its solutions converge in,
    its orders (strong and weak, for diagonal noise), drift evaluations per step, and whether Diffrax's
    stochastic adjoint can run it (it needs a Stratonovich solver that takes the drift and the
    diffusion as one term: not Euler-Heun, which splits them)."""

    make: Callable[[int], diffrax.AbstractSolver]
    """The solver for paths of this many coordinates (y0's last axis)."""
    calculus: str
    strong_order: float
    weak_order: float
    stages: int
    adjoint: bool = False


SDE_SOLVERS: dict[str, SDESolverSpec] = {
    "euler": SDESolverSpec(lambda _: diffrax.Euler(), "ito", 0.5, 1.0, 1),
    "milstein": SDESolverSpec(lambda size: _BatchItoMilstein(size), "ito", 1.0, 1.0, 1),
    "euler_heun": SDESolverSpec(lambda _: diffrax.EulerHeun(), "stratonovich", 0.5, 1.0, 1),
    "heun": SDESolverSpec(lambda _: diffrax.Heun(), "stratonovich", 0.5, 1.0, 2, adjoint=True),
    "midpoint": SDESolverSpec(lambda _: diffrax.Midpoint(), "stratonovich", 0.5, 1.0, 2, adjoint=True),
}
"""Euler-Maruyama and Milstein converge to the Ito solution; the others to the Stratonovich one
(for non-commutative noise the strong orders fall to 0.5). Milstein is Diffrax's `ItoMilstein` step
computed for diagonal noise on a batch of paths (`_BatchItoMilstein`), in cost linear in the paths."""

SDE_ADJOINTS = ("checkpoint", "backsolve")
"""Pathwise backprop through the steps, or the stochastic adjoint (Li et al. 2020; heun and midpoint
only)."""


class GridBrownianPath(diffrax.AbstractBrownianPath):
    """A Brownian path given by its values `ws` (time, *shape) at the grid `ts`, linear in between.

    A fixed-step solve on this grid receives exactly the increments ws[n + 1] - ws[n]
    (flattened, as `solve_sde` sees the state). The path is data, not a parameter: its
    gradient is zero.
    """

    ts: Float[Array, " time"]
    ws: Float[Array, "time ..."]
    levy_area: type = eqx.field(static=True, default=diffrax.BrownianIncrement)

    @property
    def t0(self):
        return self.ts[0]

    @property
    def t1(self):
        return self.ts[-1]

    def evaluate(self, t0, t1=None, left: bool = True, use_levy: bool = False):
        def at(t):
            flat = self.ws.reshape(len(self.ts), -1)
            return jax.vmap(lambda column: jnp.interp(t, self.ts, column), in_axes=1)(flat)

        value = jax.lax.stop_gradient(at(t0) if t1 is None else at(t1) - at(t0))
        if use_levy:
            return diffrax.BrownianIncrement(dt=t1 - t0, W=value)
        return value


def brownian_path(
    kind: str, t0: float, t1: float, shape: tuple[int, ...], *, key: PRNGKeyArray, dt: float, dtype=None
) -> diffrax.AbstractBrownianPath:
    """A Brownian motion for states of `shape` on [t0, t1] (flattened, as `solve_sde` sees the state):
    `virtual_tree` (resolved to a tenth of the step `dt`) or `unsafe` (Diffrax's
    `UnsafeBrownianPath`: fresh increments, no reuse)."""
    if kind not in BROWNIAN_PATHS:
        raise ValueError(f"unknown Brownian path {kind!r}; choose one of {', '.join(BROWNIAN_PATHS)}")
    structure = jax.ShapeDtypeStruct((math.prod(shape),), dtype or jnp.result_type(float))
    if kind == "virtual_tree":
        return diffrax.VirtualBrownianTree(t0, t1, tol=dt / 10, shape=structure, key=key)
    return diffrax.UnsafeBrownianPath(shape=structure, key=key)


def check_sde_options(solver: str, adjoint: str = "checkpoint") -> None:
    """Raise a clear ValueError if this solver and gradient method cannot be combined."""
    if solver not in SDE_SOLVERS:
        raise ValueError(f"unknown SDE solver {solver!r}; choose one of {', '.join(SDE_SOLVERS)}")
    if adjoint not in SDE_ADJOINTS:
        raise ValueError(f"unknown SDE gradient method {adjoint!r}; choose one of {', '.join(SDE_ADJOINTS)}")
    if adjoint == "backsolve" and not SDE_SOLVERS[solver].adjoint:
        able = [name for name, spec in SDE_SOLVERS.items() if spec.adjoint]
        raise ValueError(
            f"the stochastic adjoint (backsolve) needs a Stratonovich solver that takes the drift and "
            f"diffusion as one term ({', '.join(able)}), not {solver!r}"
        )


def solve_sde(
    drift,
    diffusion,
    y0: Float[Array, "..."],
    ts: Float[Array, " time"],
    *,
    brownian: diffrax.AbstractBrownianPath,
    dt: float,
    solver: str = "euler",
    adjoint: str = "checkpoint",
    args=None,
    max_steps: int | None = None,
) -> Solution:
    """Solve dy = drift(t, y, args) dt + diffusion(t, y, args) dW from ts[0], saving at `ts`, step `dt`.

    `diffusion` returns the diagonal of the noise matrix (y's shape). A y0 of shape (..., dim) may
    be a batch: its leading axes independent paths of `dim` coordinates, `brownian` the increments
    of the whole batch. Every solver's cost is linear in the number of paths; Milstein, which needs
    the Jacobian of the diffusion, takes it within each path only (a path's diffusion may not
    depend on another path's state). `drift` and `diffusion` are pytrees (Equinox modules) or
    plain functions of (t, y, args); the gradient flows to their arrays and to `args` through
    `adjoint`: `checkpoint` (backprop through the steps) or `backsolve` (the stochastic adjoint,
    solved backward on the same Brownian path).
    `nfe_forward` counts drift evaluations. The steps are counted in Python when the save times
    are concrete (a NumPy array, or an array closed over under `jax.jit` and `jax.vmap`); traced
    save times need `max_steps`, at least the number of steps of `dt` over them.
    """
    check_sde_options(solver, adjoint)
    spec = SDE_SOLVERS[solver]
    max_steps = _fixed_step_budget(ts[0], ts[-1], dt=dt, max_steps=max_steps)
    ts = jnp.asarray(ts, jnp.result_type(y0))
    shape = jnp.shape(y0)
    flat = _Flattened(drift, diffusion, shape)
    terms = diffrax.MultiTerm(diffrax.ODETerm(flat.drift), diffrax.ControlTerm(flat.noise, brownian))
    method = spec.make(shape[-1] if shape else 1)
    chosen = diffrax.RecursiveCheckpointAdjoint() if adjoint == "checkpoint" else diffrax.BacksolveAdjoint()
    solution = diffrax.diffeqsolve(
        terms,
        method,
        ts[0],
        ts[-1],
        dt,
        jnp.reshape(y0, (-1,)),
        args=args,
        saveat=diffrax.SaveAt(ts=ts),
        adjoint=chosen,
        max_steps=max_steps,
        throw=False,
    )
    num_steps = solution.stats["num_steps"]
    return Solution(
        ts=solution.ts,
        ys=solution.ys.reshape((len(ts),) + shape),
        num_steps=num_steps,
        num_rejected_steps=solution.stats["num_rejected_steps"],
        nfe_forward=spec.stages * num_steps,
        status=_status(solution.result),
    )


class _Flattened(eqx.Module):
    """The drift and the diagonal diffusion on the flattened state (Diffrax's noise acts on vectors)."""

    drift_function: Callable
    diffusion_function: Callable
    shape: tuple[int, ...] = eqx.field(static=True)

    def drift(self, t, y, args):
        return self.drift_function(t, y.reshape(self.shape), args).reshape(-1)

    def noise(self, t, y, args):
        return lineax.DiagonalLinearOperator(
            self.diffusion_function(t, y.reshape(self.shape), args).reshape(-1)
        )
