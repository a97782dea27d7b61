"""Models on disk: one verified file holding a model's arrays and how to rebuild its skeleton.

A saved model records its `kind` (a key of `MODEL_KINDS`) and the keyword arguments that
build it (`spec`); loading rebuilds that skeleton and fills in the arrays after checking
the file's checksums and every array's shape. A corrupt or truncated file is a
`pyode.CorruptFile` naming it.
"""

from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import CorruptFile, load_arrays, save_arrays
from ._cnf import make_cnf
from ._field import LinearField, MLPField
from ._image import make_image_classifier
from ._latent import RecurrentForecaster, make_latent_ode
from ._node import make_classifier
from ._sde import make_neural_sde
from ._second_order import make_position_ode


def _float32(tree):
    return jax.tree_util.tree_map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, tree)


MODEL_KINDS: dict[str, Callable[..., eqx.Module]] = {
    "classifier": lambda *, key, **spec: _float32(make_classifier(key=key, **spec)),
    "mlp_field": lambda *, dim, key, **spec: _float32(MLPField(dim, key=key, **spec)),
    "linear_field": lambda *, dim, key: _float32(LinearField(dim, key=key)),
    "image_classifier": lambda *, key, **spec: make_image_classifier(key=key, **spec),
    "cnf": lambda *, key, **spec: _float32(make_cnf(key=key, **spec)),
    "neural_sde": lambda *, key, **spec: _float32(make_neural_sde(key=key, **spec)),
    "latent_ode": lambda *, key, **spec: _float32(make_latent_ode(key=key, **spec)),
    "recurrent_forecaster": lambda *, obs_dim, hidden, key: _float32(
        RecurrentForecaster(obs_dim, hidden, key=key)
    ),
    "position_ode": lambda *, kind, key, **spec: _float32(make_position_ode(kind, key=key, **spec)),
}
"""Builders of every model that can be saved: kind -> f(**spec, key) giving a skeleton (the
experiments train in float32, whatever JAX's 64-bit mode)."""


def build_model(kind: str, spec: dict, *, key) -> eqx.Module:
    """A fresh model of `kind` built from `spec`."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    return MODEL_KINDS[kind](key=key, **spec)


def save_model(path: str | Path, model: eqx.Module, *, kind: str, spec: dict, metadata: dict | None = None):
    """Write `model` (built by `build_model(kind, spec)`) and `metadata` to `path`, atomically."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))
    arrays = {f"leaf_{i:05d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    save_arrays(path, arrays, {"kind": kind, "spec": spec, **(metadata or {})})


def load_model(path: str | Path) -> tuple[eqx.Module, dict]:
    """The model saved at `path` and its metadata (kind, spec and what the writer added)."""
    arrays, metadata = load_arrays(path)
    if metadata.get("kind") not in MODEL_KINDS:
        raise CorruptFile(f"{path} does not hold a pyode model (kind {metadata.get('kind')!r})")
    skeleton = build_model(metadata["kind"], metadata["spec"], key=jax.random.PRNGKey(0))
    params, static = eqx.partition(skeleton, eqx.is_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    if len(leaves) != len(arrays):
        raise CorruptFile(
            f"{path} holds {len(arrays)} arrays; a {metadata['kind']} of this spec has {len(leaves)}"
        )
    restored = []
    for i, leaf in enumerate(leaves):
        array = arrays[f"leaf_{i:05d}"]
        if array.shape != leaf.shape:
            raise CorruptFile(f"{path}: array {i} has shape {array.shape}, the model expects {leaf.shape}")
        restored.append(jnp.asarray(array))
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, restored), static), metadata
