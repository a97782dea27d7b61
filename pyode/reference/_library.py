"""The interface every library offers the benchmarks: its training step and its forward solves.

Each independent implementation (pyode, torchdiffeq, torchode, SciPy, the scratch solvers) has one
`AbstractLibrary` in its own module, beside its field adapter and its cross-validation backend, and
`pyode.bench` finds it by name (`get_library`). The benchmarks then only orchestrate and measure.
"""

from collections.abc import Callable
from dataclasses import dataclass

from ._case import Case
from ._problem import Problem

PrecisionRunner = Callable[[float, float], tuple[Callable[[], tuple], Callable[[], object]]]
"""(rtol, atol) -> (result, call): `result()` gives (ys (time, batch, dim) as NumPy, NFE) and raises
on a failed solve; `call()` is the solve alone, blocking, for timing."""


class MethodUnavailable(RuntimeError):
    """This method cannot run here (e.g. its compiler fails); the message says why in one line."""


@dataclass(frozen=True)
class TrainingStep:
    """A library's training step on a problem, and the pieces the measurements need.

    - `run()`: one step (loss and gradient), blocking; returns the loss;
    - `gradient()`: (loss, [(dL/dW, dL/db), ...] of the field) as NumPy;
    - `count()`: (forward, backward) evaluation counts of one step;
    - `evaluate()` / `evaluate_vjp()`: `network_calls` batched evaluations of the field
      alone, without and with a vector-Jacobian product (to parameters and state);
    - `continuous`: the step solves an adjoint ODE backward, so its forward evaluations have no
      VJP paired with them.
    """

    library: str
    method: str
    run: Callable[[], float]
    gradient: Callable[[], tuple[float, list]]
    count: Callable[[], tuple[int, int]]
    evaluate: Callable[[], object]
    evaluate_vjp: Callable[[], object]
    network_calls: int = 1
    continuous: bool = False
    run_counted: Callable[[], float] | None = None
    """pyode only: the step with the evaluation counters on (every evaluation reports to the host)."""
    training_cycle: Callable[[], object] | None = None
    """pyode only: `count_every` steps as `pyode.train.fit` runs them (update, checks; one counted)."""
    training_step: Callable[[], object] | None = None
    """pyode only: one bare step as `pyode.train.fit` runs it."""
    compiled_memory: Callable[[], dict] | None = None
    """pyode only: XLA's memory analysis of the compiled step (bytes)."""

    @property
    def name(self) -> str:
        return f"{self.library}-{self.method}"


class AbstractLibrary:
    """One library as the benchmarks run it. Building one imports nothing heavy.

    `methods` are its training-step methods (none: it has no training step); `seminorm` those that
    change the error norm of an adaptive solve; `adaptive_only` says that it is benchmarked on
    adaptive problems only. `precision_solvers` are the adaptive solvers it offers the
    work-precision study, described by `precision_note`.
    """

    name: str
    methods: tuple[str, ...] = ()
    seminorm: tuple[str, ...] = ()
    adaptive_only: bool = False
    precision_solvers: tuple[str, ...] = ()
    precision_note: str = ""

    def unfit_reason(self, problem: Problem, method: str) -> str | None:
        """Why `method` does not apply to `problem` (a fixed-step one), or None when it does."""
        if problem.steps is None:
            return None
        if method in self.seminorm:
            return f"{method} changes the error norm of an adaptive solve; this problem is fixed-step"
        if self.adaptive_only:
            return f"{self.name} is benchmarked on adaptive problems only; this problem is fixed-step"
        return None

    def training_step(self, problem: Problem, method: str, *, count_every: int) -> TrainingStep:
        """The training step of `problem` by `method` (pyode's loop counting every `count_every`)."""
        raise ValueError(f"{self.name} has no training step")

    def field(self, case: Case, *, final: str | None = None):
        """The library's field of `case`, its output passed through `final` (None or tanh) if given."""
        raise ValueError(f"{self.name} has no field of its own")

    def precision_runner(
        self, case: Case, solver: str, *, final: str | None = None, max_steps: int
    ) -> PrecisionRunner:
        """Forward solves of `case` (no gradients) by `solver`, at most `max_steps` steps where the
        library has such a limit (`PrecisionRunner`)."""
        raise ValueError(f"{self.name} offers no work-precision solves")

    sde_methods: tuple[str, ...] = ()
    """The SDE solvers it offers the batch-sampling benchmark (`sde_batch`)."""

    def sde_batch(
        self, method: str, paths: int, *, steps: int, dtype: str, memory_limit: float
    ) -> tuple[Callable[[], object], int]:
        """(call, largest array's bytes): sampling a batch of `paths` SDE paths in `steps` steps by
        `method`; MethodUnavailable past `memory_limit` bytes."""
        raise ValueError(f"{self.name} offers no SDE batch sampling")

    def set_threads(self, threads: int) -> None:
        """Give the library `threads` CPU threads (the same as JAX's), where it has a setting for it."""


def one_line(error: Exception) -> str:
    """`TypeName: first line of the message`: why something broke, in one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"
