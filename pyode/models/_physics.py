"""Vector fields from physics, with their parameters as arrays so that they can be differentiated."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float


class VanDerPol(eqx.Module):
    """The Van der Pol oscillator dx/dt = y, dy/dt = mu (1 - x^2) y - x; `theta` = [mu].

    Stiff for large mu (relaxation oscillations): the cross-validation's implicit-solver case.
    """

    theta: Float[Array, "1"]

    def __init__(self, mu: float | Float[Array, "1"]):
        self.theta = jnp.reshape(jnp.asarray(mu, dtype=float), (1,))

    def __call__(self, t: Float[Array, ""], y: Float[Array, "... 2"]) -> Float[Array, "... 2"]:
        x, v = y[..., 0], y[..., 1]
        mu = self.theta[0]
        return jnp.stack([v, mu * (1 - x**2) * v - x], axis=-1)
