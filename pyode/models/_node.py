"""Neural ODEs built on `pyode.solve`: plain, augmented (ANODE) and classifiers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .. import Solution, solve
from ._field import MLPField


class NeuralODE(eqx.Module):
    """Integrates its vector field from t0 to t1 (Chen et al. 2018).

    Solver options are keyword arguments of `pyode.solve` (`solver`, `adjoint`, `rtol`,
    `atol`, `dt`, `steps`), kept static so that a jitted call compiles once.
    """

    field: eqx.Module
    t0: float = eqx.field(static=True, default=0.0)
    t1: float = eqx.field(static=True, default=1.0)
    solve_options: dict = eqx.field(static=True, default_factory=dict)

    def solve(self, y0: Float[Array, "... dim"], ts: Float[Array, " time"] | None = None) -> Solution:
        """The full solution: trajectory at `ts` (or the final state) and its cost."""
        return solve(self.field, y0, ts, t0=self.t0, t1=self.t1, **self.solve_options)

    def __call__(self, y0: Float[Array, "... dim"]) -> Float[Array, "... dim"]:
        """The state at t1."""
        return self.solve(y0).final


class AugmentedNeuralODE(NeuralODE):
    """ANODE (Dupont et al. 2019): the state padded with `augment` zero dimensions.

    The extra dimensions give the flow room to move points past each other, which a flow
    in the data's own dimension (a homeomorphism) cannot.
    """

    augment: int = eqx.field(static=True, default=0)

    def lift(self, x: Float[Array, "... data"]) -> Float[Array, "... state"]:
        """Pad x with zeros to the field's state dimension."""
        return jnp.concatenate([x, jnp.zeros(x.shape[:-1] + (self.augment,), x.dtype)], axis=-1)

    def solve(self, x: Float[Array, "... data"], ts: Float[Array, " time"] | None = None) -> Solution:
        return super().solve(self.lift(x), ts)


class ODEClassifier(eqx.Module):
    """A neural ODE followed by a linear read-out giving one logit per point."""

    ode: NeuralODE
    readout: eqx.nn.Linear

    def __call__(self, x: Float[Array, "batch data"]) -> tuple[Float[Array, " batch"], Solution]:
        """Logits and the ODE solution (for its evaluation counts)."""
        solution = self.ode.solve(x)
        logits = solution.final @ self.readout.weight[0] + self.readout.bias[0]
        return logits, solution


def classifier_loss(model: ODEClassifier, batch) -> tuple[Float[Array, ""], dict]:
    """Mean sigmoid cross-entropy of (points, labels), with accuracy, forward NFE and solver status."""
    x, y = batch
    logits, solution = model(x)
    loss = optax.sigmoid_binary_cross_entropy(logits, y.astype(logits.dtype)).mean()
    accuracy = jnp.mean((logits > 0) == (y == 1))
    return loss, {"accuracy": accuracy, "nfe_forward": solution.nfe_forward, "solver_status": solution.status}


def make_classifier(
    data_dim: int,
    *,
    augment: int = 0,
    width: int = 64,
    depth: int = 1,
    activation: str = "tanh",
    time_input: bool = False,
    t1: float = 1.0,
    solve_options: dict,
    key: PRNGKeyArray,
) -> ODEClassifier:
    """A binary classifier: (A)NODE in `data_dim + augment` dimensions, then a linear logit."""
    field_key, readout_key = jax.random.split(key)
    state_dim = data_dim + augment
    field = MLPField(
        state_dim, width=width, depth=depth, activation=activation, time_input=time_input, key=field_key
    )
    options = dict(solve_options)
    if augment:
        ode = AugmentedNeuralODE(field, 0.0, t1, options, augment)
    else:
        ode = NeuralODE(field, 0.0, t1, options)
    return ODEClassifier(ode, eqx.nn.Linear(state_dim, 1, key=readout_key))
