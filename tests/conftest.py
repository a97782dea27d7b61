"""Shared test set-up: float64 for the numerics, one CPU thread per test process, `tree_allclose`."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)

HANG_GUARD_SECONDS = 7200
"""The one time limit a test puts on a subprocess: a guard against a hang, never a speed requirement.
Several times the slowest run measured on a loaded machine (the tiny end-to-end workflow ran past
900 s at load ~10). Speed targets belong in the benchmarks (the workflow's bench rules), not in tests."""


def tree_allclose(a, b, *, rtol=1e-7, atol=0.0) -> bool:
    """Whether two pytrees have the same structure and all leaves close."""
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    if tree_a != tree_b:
        return False
    return all(jnp.allclose(x, y, rtol=rtol, atol=atol) for x, y in zip(leaves_a, leaves_b))


def relative_error(a, b) -> float:
    """max |a - b| / max |b| over all leaves of two pytrees."""
    leaves_a = jax.tree_util.tree_leaves(a)
    leaves_b = jax.tree_util.tree_leaves(b)
    numerator = max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(leaves_a, leaves_b))
    denominator = max(float(jnp.max(jnp.abs(y))) for y in leaves_b)
    return numerator / denominator


@pytest.fixture
def rng_key():
    return jax.random.PRNGKey(0)
