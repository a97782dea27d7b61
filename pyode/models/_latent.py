"""The latent ODE of Chen et al. (2018, section 5) and its recurrent baseline, for irregular time series.

Observations of one series are given as `times` (n,), `values` (n, obs) and a `mask` (n,)
(1 for an observation, 0 for padding): padded entries are read but change nothing, so
series of different lengths batch together. Times need not be evenly spaced; every
network that reads a series is told the time gap to the neighbouring observation.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .. import Solution, solve
from ._field import MLPField, activation_function


def _hidden_start(cell: eqx.nn.GRUCell, values) -> Array:
    """A GRU's zero state in the dtype its updates will have (the values' and the weights' promoted)."""
    return jnp.zeros(cell.hidden_size, jnp.result_type(values, cell.weight_hh))


def _last_observed(times: Float[Array, " n"], mask: Float[Array, " n"]) -> Float[Array, ""]:
    """The latest observed time (the earliest time when nothing is observed)."""
    return jnp.max(jnp.where(mask > 0, times, jnp.min(times)))


class RecognitionRNN(eqx.Module):
    """q(z0 | x_1..x_n) = N(mean, exp(logvar)): a GRU reads the series backwards in time.

    At each observation it reads [x_i, t_next - t_i], t_next the time of the observation read
    before it (the next one in time; the gap is 0 for the last), so the encoder knows how far
    apart the observations are; a linear head maps its final state to (mean, logvar).
    """

    cell: eqx.nn.GRUCell
    head: eqx.nn.Linear
    latent: int = eqx.field(static=True)

    def __init__(self, obs_dim: int, latent: int, hidden: int, *, key: PRNGKeyArray):
        cell_key, head_key = jax.random.split(key)
        self.cell = eqx.nn.GRUCell(obs_dim + 1, hidden, key=cell_key)
        self.head = eqx.nn.Linear(hidden, 2 * latent, key=head_key)
        self.latent = latent

    def __call__(
        self, times: Float[Array, " n"], values: Float[Array, "n obs"], mask: Float[Array, " n"]
    ) -> tuple[Float[Array, " latent"], Float[Array, " latent"]]:
        following, _, _ = _next_observed(times, values, mask, _last_observed(times, mask))

        def read(hidden, observation):
            t, x, observed, later = observation
            gap = jnp.where(observed > 0, later - t, 0.0).astype(x.dtype)
            updated = self.cell(jnp.concatenate([x, gap[None]]), hidden)
            return jnp.where(observed > 0, updated, hidden), None

        start = _hidden_start(self.cell, values)
        hidden, _ = jax.lax.scan(read, start, (times, values, mask, following), reverse=True)
        out = self.head(hidden)
        return out[: self.latent], out[self.latent :]


class LatentODE(eqx.Module):
    """A latent ODE: an encoder gives q(z0), an autonomous MLP field carries z forward, a decoder
    maps each latent state to the mean of a Gaussian observation."""

    encoder: RecognitionRNN
    field: MLPField
    decoder: eqx.nn.MLP
    solve_options: dict = eqx.field(static=True, default_factory=dict)

    def encode(self, times, values, mask) -> tuple[Float[Array, "... latent"], Float[Array, "... latent"]]:
        """(mean, logvar) of q(z0) for one series or, with a leading batch axis, for a batch."""
        if values.ndim == 3:
            return jax.vmap(self.encoder)(times, values, mask)
        return self.encoder(times, values, mask)

    def latent_path(self, z0: Float[Array, "... latent"], ts: Float[Array, " time"], **options) -> Solution:
        """z(t) at `ts` from z0 at ts[0] (options override the model's solve options)."""
        return solve(self.field, z0, ts, **{**self.solve_options, **options})

    def decode(self, z: Float[Array, "... latent"]) -> Float[Array, "... obs"]:
        """The mean observation of each latent state."""
        return jnp.vectorize(self.decoder, signature="(l)->(o)")(z)


def make_latent_ode(
    *,
    obs_dim: int = 2,
    latent: int = 4,
    encoder_hidden: int = 25,
    field_width: int = 20,
    field_depth: int = 1,
    field_activation: str = "tanh",
    decoder_width: int = 20,
    decoder_activation: str = "relu",
    solve_options: dict,
    key: PRNGKeyArray,
) -> LatentODE:
    """A `LatentODE` with Chen et al.'s sizes by default: a 25-unit recognition RNN, a 4-d latent
    space, a field and a decoder with one hidden layer of 20."""
    encoder_key, field_key, decoder_key = jax.random.split(key, 3)
    return LatentODE(
        RecognitionRNN(obs_dim, latent, encoder_hidden, key=encoder_key),
        MLPField(latent, width=field_width, depth=field_depth, activation=field_activation, key=field_key),
        eqx.nn.MLP(
            latent,
            obs_dim,
            decoder_width,
            1,
            activation=activation_function(decoder_activation),
            key=decoder_key,
        ),
        dict(solve_options),
    )


def gaussian_log_density(x, mean, noise: float):
    """log N(x | mean, noise^2), elementwise."""
    return -0.5 * (jnp.log(2 * jnp.pi) + 2 * jnp.log(noise) + ((x - mean) / noise) ** 2)


def latent_ode_loss(model: LatentODE, batch, *, noise: float) -> tuple[Float[Array, ""], dict]:
    """The negative ELBO per series: -sum_i log p(x_i | z(t_i)) + KL(q(z0) || N(0, I)), one sample of z0.

    `batch` = (grid (G,), times (B, n), values (B, n, obs), index (B, n), mask (B, n), key):
    every series' observations lie on the shared `grid` (its entries `index`), so the batch is
    solved once on the grid, from z0 at grid[0], and the predictions read off at each series'
    own times. `noise` is the observation model's standard deviation.
    """
    grid, times, values, index, mask, key = batch
    mean, logvar = model.encode(times, values, mask)
    z0 = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)
    solution = model.latent_path(z0, grid, throw=False)
    on_grid = jnp.swapaxes(model.decode(solution.ys), 0, 1)
    predicted = jnp.take_along_axis(on_grid, index[..., None], axis=1)
    log_likelihood = jnp.sum(gaussian_log_density(values, predicted, noise).sum(-1) * mask, axis=1)
    kl = 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)
    squared = jnp.sum(((predicted - values) ** 2).sum(-1) * mask) / (mask.sum() * values.shape[-1])
    return jnp.mean(kl - log_likelihood), {
        "rmse": jnp.sqrt(squared),
        "kl": jnp.mean(kl),
        "nfe_forward": solution.nfe_forward,
        "solver_status": solution.status,
    }


class RecurrentForecaster(eqx.Module):
    """The RNN baseline: a GRU reads [x_i, t_next - t_i] forwards and predicts x at t_next.

    Trained on one-step predictions; it forecasts past its last observation by feeding its
    own predictions back with the gaps to the times asked for.
    """

    cell: eqx.nn.GRUCell
    head: eqx.nn.Linear

    def __init__(self, obs_dim: int, hidden: int, *, key: PRNGKeyArray):
        cell_key, head_key = jax.random.split(key)
        self.cell = eqx.nn.GRUCell(obs_dim + 1, hidden, key=cell_key)
        self.head = eqx.nn.Linear(hidden, obs_dim, key=head_key)

    def read(self, times, values, mask, then: Float[Array, ""]):
        """Read one series: the final state and the prediction after each entry (n, obs), that is of
        the next observation; after the last observation the model is asked for time `then`."""
        following, _, _ = _next_observed(times, values, mask, then)

        def step(hidden, observation):
            t, x, observed, target_time = observation
            gap = jnp.where(observed > 0, target_time - t, 0.0).astype(x.dtype)
            updated = self.cell(jnp.concatenate([x, gap[None]]), hidden)
            hidden = jnp.where(observed > 0, updated, hidden)
            return hidden, self.head(hidden)

        start = _hidden_start(self.cell, values)
        return jax.lax.scan(step, start, (times, values, mask, following))

    def forecast(self, times, values, mask, queries: Float[Array, " m"]) -> Float[Array, "m obs"]:
        """The predictions at the later times `queries` (sorted) after reading one series."""
        hidden, _ = self.read(times, values, mask, queries[0])
        first = self.head(hidden)

        def roll(carry, gap):
            hidden, x = carry
            hidden = self.cell(jnp.concatenate([x, gap[None].astype(x.dtype)]), hidden)
            x = self.head(hidden)
            return (hidden, x), x

        _, rest = jax.lax.scan(roll, (hidden, first), jnp.diff(queries))
        return jnp.concatenate([first[None], rest])


def recurrent_loss(model: RecurrentForecaster, batch, *, noise: float) -> tuple[Float[Array, ""], dict]:
    """Negative Gaussian log-likelihood (standard deviation `noise`) of one-step predictions, per series.

    `batch` has the latent ODE's layout (its grid and key unused): each observation but the
    last is a prediction of the next one.
    """
    _, times, values, _, mask, _ = batch

    def one(times, values, mask):
        _, predictions = model.read(times, values, mask, jnp.max(times))
        _, targets, has_target = _next_observed(times, values, mask, jnp.max(times))
        return predictions, targets, has_target * mask

    predicted, targets, target_mask = jax.vmap(one)(times, values, mask)
    log_likelihood = jnp.sum(gaussian_log_density(targets, predicted, noise).sum(-1) * target_mask, axis=1)
    squared = jnp.sum(((predicted - targets) ** 2).sum(-1) * target_mask)
    rmse = jnp.sqrt(squared / (target_mask.sum() * values.shape[-1]))
    return -jnp.mean(log_likelihood), {"rmse": rmse}


def _next_observed(times, values, mask, then):
    """For each entry of a series: the time and value of the next observation after it, and whether
    there is one (`then` and zeros where there is none)."""

    def later(carry, observation):
        t, x, observed = observation
        updated = (t, x, jnp.ones((), values.dtype))
        carry_next = jax.tree_util.tree_map(
            lambda new, old: jnp.where(observed > 0, new, old), updated, carry
        )
        return carry_next, carry

    start = (then, jnp.zeros_like(values[0]), jnp.zeros((), values.dtype))
    _, following = jax.lax.scan(later, start, (times, values, mask), reverse=True)
    return following
