"""Vector fields: the right-hand side f(t, y; theta) of dy/dt = f."""

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "elu": jax.nn.elu,
    "silu": jax.nn.silu,
    "relu": jax.nn.relu,
}


def activation_function(name: str) -> Callable[[Array], Array]:
    """The activation called `name`; a clear error lists the valid names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


class MLPField(eqx.Module):
    """A batched multilayer perceptron f(t, y) acting on states of shape (..., dim).

    Layout (shared with `pyode.scratch` and the cross-validation case files): layer k
    holds `weight` of shape (out, in) and `bias` of shape (out,), as Lux's Dense keeps
    them. With `time_input`, t is appended as the last input feature of the first layer.
    The activation follows every layer but the last. The output has `dim` entries unless
    `out_dim` says otherwise (a second-order field's acceleration has half the state's).
    """

    layers: tuple[eqx.nn.Linear, ...]
    activation: str = eqx.field(static=True)
    time_input: bool = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        *,
        width: int = 64,
        depth: int = 1,
        activation: str = "tanh",
        time_input: bool = False,
        out_dim: int | None = None,
        key: PRNGKeyArray,
    ):
        activation_function(activation)
        out_dim = dim if out_dim is None else out_dim
        if dim < 1 or width < 1 or depth < 0 or out_dim < 1:
            raise ValueError(
                f"need dim >= 1, width >= 1, depth >= 0, out_dim >= 1; got {dim}, {width}, {depth}, {out_dim}"
            )
        sizes = [dim + int(time_input)] + [width] * depth + [out_dim]
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            eqx.nn.Linear(n_in, n_out, key=k) for n_in, n_out, k in zip(sizes[:-1], sizes[1:], keys)
        )
        self.activation = activation
        self.time_input = time_input

    @property
    def sizes(self) -> list[int]:
        """Input size of each layer, then the output size of the last."""
        return [self.layers[0].in_features] + [layer.out_features for layer in self.layers]

    def __call__(self, t: Float[Array, ""], y: Float[Array, "... dim"]) -> Float[Array, "... out"]:
        sigma = activation_function(self.activation)
        h = y
        if self.time_input:
            h = jnp.concatenate([h, jnp.broadcast_to(t, h.shape[:-1] + (1,)).astype(h.dtype)], axis=-1)
        for i, layer in enumerate(self.layers):
            h = h @ layer.weight.T + layer.bias
            if i < len(self.layers) - 1:
                h = sigma(h)
        return h

    def weights(self) -> list[tuple[Array, Array]]:
        """[(weight (out, in), bias (out,)), ...] for every layer."""
        return [(layer.weight, layer.bias) for layer in self.layers]

    def with_weights(self, weights: Sequence[tuple[Array, Array]]) -> "MLPField":
        """A copy of this field holding `weights` (same layout as `weights()`)."""
        if len(weights) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} layers of weights, got {len(weights)}")
        new_layers = []
        for layer, (weight, bias) in zip(self.layers, weights):
            weight, bias = jnp.asarray(weight), jnp.asarray(bias)
            if weight.shape != layer.weight.shape or bias.shape != layer.bias.shape:
                raise ValueError(
                    f"layer shape mismatch: expected {layer.weight.shape}/{layer.bias.shape}, "
                    f"got {weight.shape}/{bias.shape}"
                )
            new_layers.append(eqx.tree_at(lambda lin: (lin.weight, lin.bias), layer, (weight, bias)))
        return eqx.tree_at(lambda field: field.layers, self, tuple(new_layers))


class LinearField(eqx.Module):
    """dz/dt = W z: a linear, time-invariant field (W starts small and random)."""

    matrix: Float[Array, "dim dim"]

    def __init__(self, dim: int, *, key: PRNGKeyArray):
        self.matrix = 0.1 * jax.random.normal(key, (dim, dim))

    def __call__(self, t: Float[Array, ""], y: Float[Array, "... dim"]) -> Float[Array, "... dim"]:
        return y @ self.matrix.T


def mlp_field_from_weights(
    weights: Sequence[tuple[Array, Array]], *, activation: str, time_input: bool
) -> MLPField:
    """Build an `MLPField` whose layers hold exactly `weights` [(W (out, in), b (out,)), ...]."""
    width = weights[0][0].shape[0]
    field = MLPField(
        weights[0][0].shape[1] - int(time_input),
        width=width,
        depth=len(weights) - 1,
        activation=activation,
        time_input=time_input,
        out_dim=weights[-1][0].shape[0],
        key=jax.random.PRNGKey(0),
    )
    if len(weights) > 1 and any(w.shape[0] != width for w, _ in weights[:-1]):
        raise ValueError("hidden layers of different widths are not supported")
    return field.with_weights(weights)
