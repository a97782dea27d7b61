"""Conversion between `ScratchMLP` and pyode's Equinox `MLPField` (same parameter layout).

`pyode.models` (and with it JAX) is imported inside `to_mlp_field` only, so that
importing `pyode.scratch` never imports an autodiff library.
"""

import numpy as np

from ._field import ScratchMLP


def to_mlp_field(field: ScratchMLP):
    """The `pyode.models.MLPField` holding the same weights as `field`."""
    import jax.numpy as jnp

    from pyode.models import mlp_field_from_weights

    weights = [(jnp.asarray(w), jnp.asarray(b)) for w, b in field.weights]
    return mlp_field_from_weights(weights, activation=field.activation, time_input=field.time_input)


def from_mlp_field(field) -> ScratchMLP:
    """The `ScratchMLP` holding the same weights as the `pyode.models.MLPField` `field`."""
    weights = [(np.array(w), np.array(b)) for w, b in field.weights()]
    return ScratchMLP(weights, field.activation, field.time_input)
