"""Neural SDEs: dX = f(X) dt + g(X) dW with a drift network f and a positive diagonal diffusion network g.

Both networks see the state standardised by the data's `centre` and `scale` and answer in the
data's units (the drift in units per time, the diffusion in units per square-root time).
Fitting is by the Euler-Maruyama transition likelihood (`transition_nll`): over an
observation interval dt, X(t + dt) given X(t) = x is taken as normal with mean x + f(x) dt
and variance g(x)^2 dt. Sampling solves the SDE with Diffrax's terms (`pyode.solve_sde`).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .. import Solution, brownian_path, solve_sde
from ._field import MLPField


class _Network(eqx.Module):
    """An MLP from `dim` inputs to `dim` outputs with hidden `width` x `depth` (no time input)."""

    mlp: MLPField

    def __call__(self, u):
        return self.mlp(jnp.zeros((), u.dtype), u)


class NeuralSDE(eqx.Module):
    """f(x) = scale * drift_net(u), g(x) = scale * softplus(diffusion_net(u)), u = (x - centre) / scale."""

    drift_net: _Network
    diffusion_net: _Network
    centre: float = eqx.field(static=True, default=0.0)
    scale: float = eqx.field(static=True, default=1.0)

    def _standard(self, y):
        return (y - self.centre) / self.scale

    def drift(self, t, y: Float[Array, "... dim"], args=None) -> Float[Array, "... dim"]:
        """The drift f(y) (autonomous: t and args are ignored)."""
        return self.scale * self.drift_net(self._standard(y))

    def diffusion(self, t, y: Float[Array, "... dim"], args=None) -> Float[Array, "... dim"]:
        """The diagonal of the diffusion, g(y) > 0."""
        return self.scale * jax.nn.softplus(self.diffusion_net(self._standard(y)))

    def sample(
        self,
        y0: Float[Array, " dim"],
        ts: Float[Array, " time"],
        *,
        key: PRNGKeyArray,
        dt: float,
        solver: str = "euler",
        brownian: str = "virtual_tree",
        max_steps: int | None = None,
    ) -> Solution:
        """One path from `y0` saved at `ts`, on the Brownian path of `key` (`pyode.solve_sde`).

        Works under `jax.jit` and `jax.vmap`; traced save times need `max_steps`.
        """
        path = brownian_path(brownian, ts[0], ts[-1], y0.shape, key=key, dt=dt, dtype=y0.dtype)
        return solve_sde(
            self.drift, self.diffusion, y0, ts, brownian=path, dt=dt, solver=solver, max_steps=max_steps
        )


def transition_nll(model: NeuralSDE, batch) -> tuple[Float[Array, ""], dict]:
    """Mean negative log-likelihood of transitions (x0, x1, dt) under Euler-Maruyama's normal law:
    x1 ~ N(x0 + f(x0) dt, g(x0)^2 dt), summed over dimensions, averaged over the batch."""
    x0, x1, dt = batch
    mean = x0 + model.drift(0.0, x0) * dt
    variance = model.diffusion(0.0, x0) ** 2 * dt
    nll = 0.5 * jnp.sum(jnp.log(2 * math.pi * variance) + (x1 - mean) ** 2 / variance, axis=-1).mean()
    return nll, {"nll": nll}


def make_neural_sde(
    dim: int = 1,
    *,
    drift_width: int = 32,
    drift_depth: int = 2,
    diffusion_width: int = 32,
    diffusion_depth: int = 2,
    activation: str = "tanh",
    centre: float = 0.0,
    scale: float = 1.0,
    key: PRNGKeyArray,
) -> NeuralSDE:
    """A neural SDE on `dim`-dimensional states (diagonal noise) for data of this `centre` and `scale`."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    drift_key, diffusion_key = jax.random.split(key)
    drift = MLPField(dim, width=drift_width, depth=drift_depth, activation=activation, key=drift_key)
    diffusion = MLPField(
        dim, width=diffusion_width, depth=diffusion_depth, activation=activation, key=diffusion_key
    )
    return NeuralSDE(_Network(drift), _Network(diffusion), float(centre), float(scale))
