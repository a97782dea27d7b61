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
_tracing_counted = threading.local()


@contextmanager
def counted_programs() -> Iterator[None]:
    """Solves traced inside this block count their evaluations (`solve(count_evaluations=None)`).

    Counting is decided when a program is traced: give a counted program its own jitted
    function, traced (first called) inside this block, beside the bare one.
    """
    previous = getattr(_tracing_counted, "on", False)
    _tracing_counted.on = True
    try:
        yield
    finally:
        _tracing_counted.on = previous


def counting_traced() -> bool:
    """Whether solves traced now count their evaluations (inside `counted_programs`)."""
    return getattr(_tracing_counted, "on", False)


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
    """Evaluations seen in the `counting()` block: so far while it runs, frozen when it ends."""

    def __init__(self) -> None:
        with _lock:
            self._start = dict(_counts)
        self._end: dict | None = None

    def _now(self, kind: str) -> int:
        with _lock:
            return (self._end or _counts)[kind] - self._start[kind]

    def close(self) -> None:
        """Stop counting: later evaluations no longer add to these counts."""
        with _lock:
            self._end = dict(_counts)

    @property
    def forward(self) -> int:
        """Undifferentiated evaluations f(t, y)."""
        return self._now("forward")

    @property
    def backward(self) -> int:
        """Vector-Jacobian products of f (one per evaluation of the backward pass)."""
        return self._now("backward")


@contextmanager
def counting() -> Iterator[EvaluationCounts]:
    """Count evaluations of every counted field run inside the block.

    JAX dispatches asynchronously: block on the results (`jax.block_until_ready`)
    before reading the counts.
    """
    jax.effects_barrier()
    counts = EvaluationCounts()
    try:
        yield counts
    finally:
        jax.effects_barrier()
        counts.close()
