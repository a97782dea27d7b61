"""Counting vector-field evaluations as they really run.

Each call of a counted field passes through a `jax.custom_vjp` whose backward rule
reports to the host with `jax.debug.callback`; the primal rule does the same for plain
(undifferentiated) evaluations. The counts are therefore those of the compiled program
as executed — rejected steps, recomputation and the adjoint's backward solve included.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jax

_lock = threading.Lock()
_counts = {"forward": 0, "backward": 0}


def _bump_forward() -> None:
    with _lock:
        _counts["forward"] += 1


def _bump_backward() -> None:
    with _lock:
        _counts["backward"] += 1


def counted(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap function(t, y, params) so that each evaluation and each VJP is counted.

    `params` must be a pytree of floating-point arrays (what gets differentiated);
    anything else the function needs is closed over.
    """

    @jax.custom_vjp
    def call(t, y, params):
        jax.debug.callback(_bump_forward)
        return function(t, y, params)

    def call_fwd(t, y, params):
        return jax.vjp(function, t, y, params)

    def call_bwd(vjp, cotangent):
        jax.debug.callback(_bump_backward)
        return vjp(cotangent)

    call.defvjp(call_fwd, call_bwd)
    return call


def counted_evaluations(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap function(t, y, params) so that each evaluation is counted as forward, JVPs included.

    For fields that must stay differentiable in forward mode (an implicit solver's Newton
    Jacobians), where `counted`'s custom VJP cannot be used: the count is of evaluations as
    executed, with no split into forward and backward.
    """

    def call(t, y, params):
        jax.debug.callback(_bump_forward)
        return function(t, y, params)

    return call


class EvaluationCounts:
    """Evaluations seen since the `counting()` block began (read after blocking on results)."""

    def __init__(self) -> None:
        with _lock:
            self._start = dict(_counts)

    @property
    def forward(self) -> int:
        """Undifferentiated evaluations f(t, y)."""
        with _lock:
            return _counts["forward"] - self._start["forward"]

    @property
    def backward(self) -> int:
        """Vector-Jacobian products of f (one per evaluation of the backward pass)."""
        with _lock:
            return _counts["backward"] - self._start["backward"]


@contextmanager
def counting() -> Iterator[EvaluationCounts]:
    """Count evaluations of every counted field run inside the block.

    JAX dispatches asynchronously: block on the results (`jax.block_until_ready`)
    before reading the counts.
    """
    jax.effects_barrier()
    counts = EvaluationCounts()
    yield counts
    jax.effects_barrier()
