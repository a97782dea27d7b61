"""Continuous normalising flows (FFJORD, Grathwohl et al. 2019), RNODE's regularisers (Finlay et al. 2020).

A point x of the data is carried by dz/dt = f(t, z) from t = 0 to t1, where the base
density (a standard normal) is evaluated; by the instantaneous change of variables,
d log p(z(t)) / dt = -tr(df/dz). The solved state is [z, l] with l(0) = 0 and
dl/dt = -tr(df/dz), so that log p(x) = log N(z(t1); 0, I) - l(t1). The trace is exact (one
Jacobian-vector product per dimension: cheap in 2-D) or Hutchinson's estimate e^T (df/dz) e
with one probe e per point held for the whole solve. With RNODE's regularisers the state
also carries the integrals of the kinetic energy |f|^2 and of the squared Frobenius norm of
df/dz (exact, or |(df/dz) e|^2 with the probe).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .. import Solution, solve
from ._field import MLPField
from ._names import PROBES, TRACES


class CNFDynamics(eqx.Module):
    """d/dt [z, l(, kinetic, jacobian)] = [f(t, z), -tr(df/dz)(, |f|^2, |df/dz|_F^2)] on (..., d + 1 (+ 2)).

    Called as `dynamics(t, y)` for the exact trace or `dynamics(t, y, probe)` for Hutchinson's
    estimate with `probe` (..., d). The cross-validation's `cnf` case is this field, exact and
    without the regularisers.
    """

    field: MLPField
    regularise: bool = eqx.field(static=True, default=False)

    @property
    def dim(self) -> int:
        """The dimension d of the data (z)."""
        return self.field.sizes[-1]

    def weights(self) -> list[tuple[Array, Array]]:
        """The MLP's [(weight (out, in), bias (out,)), ...]."""
        return self.field.weights()

    def __call__(self, t, y: Float[Array, "... state"], probe: Float[Array, "... d"] | None = None):
        z = y[..., : self.dim]

        def f(z_):
            return self.field(t, z_)

        if probe is None:
            value, columns = _jacobian_columns(f, z)
            trace = sum(column[..., i] for i, column in enumerate(columns))
            frobenius = sum(jnp.sum(column**2, axis=-1) for column in columns)
        else:
            value, product = jax.jvp(f, (z,), (probe,))
            trace = jnp.sum(probe * product, axis=-1)
            frobenius = jnp.sum(product**2, axis=-1)
        pieces = [value, -trace[..., None]]
        if self.regularise:
            pieces += [jnp.sum(value**2, axis=-1, keepdims=True), frobenius[..., None]]
        return jnp.concatenate(pieces, axis=-1)


def _jacobian_columns(f, z):
    """f(z) and the columns (df/dz) e_i, i < d, each (..., d): one forward-mode product per dimension."""
    columns = []
    value = None
    for i in range(z.shape[-1]):
        basis = jnp.zeros_like(z).at[..., i].set(1.0)
        value, column = jax.jvp(f, (z,), (basis,))
        columns.append(column)
    return value, columns


def standard_normal_log_density(z: Float[Array, "... d"]) -> Float[Array, "..."]:
    """log N(z; 0, I)."""
    return -0.5 * jnp.sum(z**2, axis=-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


class CNF(eqx.Module):
    """A continuous normalising flow: data at t = 0, a standard normal base at `t1`.

    `solve_options` are `pyode.solve`'s keyword arguments for every solve (kept static).
    """

    dynamics: CNFDynamics
    t1: float = eqx.field(static=True, default=1.0)
    trace: str = eqx.field(static=True, default="exact")
    probe: str = eqx.field(static=True, default="rademacher")
    solve_options: dict = eqx.field(static=True, default_factory=dict)

    def probes(self, shape, dtype, key: PRNGKeyArray) -> Float[Array, "..."]:
        """Hutchinson probes of `shape`: Rademacher (+-1) or standard normal, with E[e e^T] = I."""
        if self.probe == "rademacher":
            return jax.random.rademacher(key, shape, dtype=dtype)
        return jax.random.normal(key, shape, dtype=dtype)

    def log_density(
        self, x: Float[Array, "batch d"], *, key: PRNGKeyArray | None = None, **solve_options
    ) -> tuple[Float[Array, " batch"], Float[Array, "batch 2"] | None, Solution]:
        """log p(x), the regularisers' integrals (kinetic, jacobian) or None, and the solve.

        Hutchinson's estimate needs a `key` for its probes; `solve_options` change the model's.
        """
        pieces = [x, jnp.zeros(x.shape[:-1] + (1,), x.dtype)]
        if self.dynamics.regularise:
            pieces.append(jnp.zeros(x.shape[:-1] + (2,), x.dtype))
        probe = None
        if self.trace == "hutchinson":
            if key is None:
                raise ValueError("Hutchinson's trace estimate needs a key for its probes")
            probe = jax.lax.stop_gradient(self.probes(x.shape, x.dtype, key))
        options = {**self.solve_options, **solve_options}
        solution = solve(
            self.dynamics, jnp.concatenate(pieces, axis=-1), t0=0.0, t1=self.t1, args=probe, **options
        )
        final = solution.final
        d = x.shape[-1]
        log_p = standard_normal_log_density(final[..., :d]) - final[..., d]
        regularisers = final[..., d + 1 :] if self.dynamics.regularise else None
        return log_p, regularisers, solution

    def flow(self, z1: Float[Array, "batch d"], ts: Float[Array, " time"], **solve_options) -> Solution:
        """Base points `z1` at t1 carried back along the flow, saved at `ts` (from t1 down to 0)."""
        options = {**self.solve_options, **solve_options}
        return solve(self.dynamics.field, z1, ts, **options)

    def sample(
        self, z1: Float[Array, "batch d"], **solve_options
    ) -> tuple[Float[Array, "batch d"], Solution]:
        """Samples of the learnt density: base points `z1` carried from t1 to 0; and the solve."""
        options = {**self.solve_options, **solve_options}
        solution = solve(self.dynamics.field, z1, t0=self.t1, t1=0.0, **options)
        return solution.final, solution


def cnf_loss(
    model: CNF, batch, *, kinetic: float = 0.0, jacobian: float = 0.0
) -> tuple[Float[Array, ""], dict]:
    """Mean negative log-likelihood of a batch (points, key), plus RNODE's regularisers weighted by
    `kinetic` and `jacobian`; with the terms, forward NFE and solver status."""
    x, key = batch
    log_p, regularisers, solution = model.log_density(x, key=key)
    nll = -jnp.mean(log_p)
    metrics = {"nll": nll, "nfe_forward": solution.nfe_forward, "solver_status": solution.status}
    loss = nll
    if regularisers is not None:
        kinetic_energy, frobenius = jnp.mean(regularisers, axis=0)
        loss = loss + kinetic * kinetic_energy + jacobian * frobenius
        metrics.update(kinetic_energy=kinetic_energy, jacobian_frobenius=frobenius)
    return loss, metrics


def make_cnf(
    dim: int = 2,
    *,
    width: int = 64,
    depth: int = 2,
    activation: str = "tanh",
    time_input: bool = True,
    t1: float = 1.0,
    trace: str = "exact",
    probe: str = "rademacher",
    regularise: bool = False,
    solve_options: dict,
    key: PRNGKeyArray,
) -> CNF:
    """A CNF on `dim`-dimensional data whose field is an MLP of `depth` hidden layers of `width`."""
    if trace not in TRACES:
        raise ValueError(f"unknown trace {trace!r}; choose one of {', '.join(TRACES)}")
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; choose one of {', '.join(PROBES)}")
    field = MLPField(dim, width=width, depth=depth, activation=activation, time_input=time_input, key=key)
    return CNF(CNFDynamics(field, regularise), t1, trace, probe, dict(solve_options))
