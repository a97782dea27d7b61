"""Second-order neural ODEs (SONODE, Norcliffe et al. 2020) and the first-order models they are
compared with, all seen through the positions they predict.

A SONODE learns x'' = f(x, x', t). It is solved as the first-order system in y = (x, v):
dx/dt = v, dv/dt = f(x, v, t), with the initial velocity v0 = g(x0) learnt from the initial
position by a second network, as in the paper.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .. import Solution, solve
from ._field import MLPField
from ._names import POSITION_MODELS


class SecondOrderField(eqx.Module):
    """dy/dt for y = (x, v), x and v of `dim` entries each: (v, acceleration(t, x, v)).

    `acceleration` is an `MLPField` from 2 dim inputs (+ t) to dim outputs, so that the
    cross-validation's `sonode` case holds exactly its layers.
    """

    acceleration: MLPField

    @property
    def dim(self) -> int:
        """Entries of the position x (half the state)."""
        return self.acceleration.sizes[-1]

    def __call__(self, t: Float[Array, ""], y: Float[Array, "... state"]) -> Float[Array, "... state"]:
        return jnp.concatenate([y[..., self.dim :], self.acceleration(t, y)], axis=-1)


def second_order_field_from_weights(weights, *, activation: str, time_input: bool) -> SecondOrderField:
    """A `SecondOrderField` whose acceleration holds exactly `weights` [(W (out, in), b (out,)), ...]."""
    from ._field import mlp_field_from_weights

    acceleration = mlp_field_from_weights(weights, activation=activation, time_input=time_input)
    if acceleration.sizes[0] - int(time_input) != 2 * acceleration.sizes[-1]:
        raise ValueError(
            f"a second-order field maps 2 dim inputs to dim outputs; got sizes {acceleration.sizes}"
        )
    return SecondOrderField(acceleration)


class PositionODE(eqx.Module):
    """x0 (..., dim) -> positions x(t) at save times, through a first-order system on a state y:

    - `node`: y = x (a flow in the positions' own space: trajectories cannot cross);
    - `anode`: y = (x, 0, ..., 0), `augment` zeros (Dupont et al. 2019);
    - `sonode`: y = (x, v) with v0 = `initial_velocity`(x0) and dy/dt = (v, f(t, x, v)).

    The positions are the first `dim` entries of y.
    """

    field: eqx.Module
    initial_velocity: eqx.nn.MLP | None
    kind: str = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    augment: int = eqx.field(static=True, default=0)
    solve_options: dict = eqx.field(static=True, default_factory=dict)

    def initial_state(self, x0: Float[Array, "... dim"]) -> Float[Array, "... state"]:
        """The state y(t0) a position x0 starts from."""
        if self.kind == "sonode":
            velocity = jnp.vectorize(self.initial_velocity, signature="(d)->(d)")(x0)
            return jnp.concatenate([x0, velocity], axis=-1)
        if self.kind == "anode":
            return jnp.concatenate([x0, jnp.zeros(x0.shape[:-1] + (self.augment,), x0.dtype)], axis=-1)
        return x0

    def solve(self, x0: Float[Array, "... dim"], ts: Float[Array, " time"], **options) -> Solution:
        """The solution in state space from x0 at ts[0], saved at `ts` (options override the model's)."""
        return solve(self.field, self.initial_state(x0), ts, **{**self.solve_options, **options})

    def positions(self, x0: Float[Array, "... dim"], ts: Float[Array, " time"], **options) -> tuple:
        """(positions (time, ..., dim), the solution): what the model predicts at `ts`."""
        solution = self.solve(x0, ts, **options)
        return solution.ys[..., : self.dim], solution


def make_position_ode(
    kind: str,
    *,
    dim: int = 1,
    augment: int = 1,
    width: int = 32,
    depth: int = 1,
    activation: str = "tanh",
    time_input: bool = False,
    velocity_width: int = 16,
    solve_options: dict,
    key: PRNGKeyArray,
) -> PositionODE:
    """A `PositionODE` of `kind` (`POSITION_MODELS`) for positions of `dim` entries.

    The field is an MLP with `depth` hidden layers of `width`; a SONODE's initial velocity
    is an MLP dim -> velocity_width -> dim (tanh). `augment` counts only for `anode`.
    """
    if kind not in POSITION_MODELS:
        raise ValueError(f"unknown position model {kind!r}; choose one of {', '.join(POSITION_MODELS)}")
    field_key, velocity_key = jax.random.split(key)
    mlp = dict(width=width, depth=depth, activation=activation, time_input=time_input, key=field_key)
    velocity = None
    if kind == "sonode":
        field = SecondOrderField(MLPField(2 * dim, out_dim=dim, **mlp))
        velocity = eqx.nn.MLP(dim, dim, velocity_width, 1, activation=jnp.tanh, key=velocity_key)
    else:
        field = MLPField(dim + (augment if kind == "anode" else 0), **mlp)
    return PositionODE(
        field,
        velocity,
        kind,
        dim,
        augment if kind == "anode" else 0,
        dict(solve_options),
    )
