"""Which training-step methods of which libraries apply to a `Problem`, and preparing one.

Each library's step lives with the library in `pyode.reference` (`get_library(name).training_step`):
the step itself (forward and gradient, blocking until done), a counted run giving the evaluation
counts, and the network alone (one batched evaluation, with and without its vector-Jacobian
product) for the solver-overhead ratio.
"""

from ..reference import LIBRARIES, Problem, TrainingStep, get_library

METHODS = {name: library.methods for name, library in LIBRARIES.items() if library.methods}
"""Every library with a training step, and its methods."""


def check_method(problem: Problem, library: str, method: str) -> None:
    """Raise a ValueError if `library` has no `method` or it does not apply to `problem`."""
    if library not in METHODS:
        raise ValueError(f"unknown library {library!r}; choose one of {', '.join(METHODS)}")
    if method not in METHODS[library]:
        raise ValueError(f"{library} has no method {method!r}; choose one of {', '.join(METHODS[library])}")
    reason = get_library(library).unfit_reason(problem, method)
    if reason is not None:
        raise ValueError(reason)


def applicable_methods(problem: Problem, libraries) -> list[tuple[str, str]]:
    """(library, method) pairs of `libraries` that apply to `problem`."""
    return [
        (library, method)
        for library in libraries
        for method in METHODS[library]
        if get_library(library).unfit_reason(problem, method) is None
    ]


def prepare(problem: Problem, library: str, method: str, *, count_every: int = 50) -> TrainingStep:
    """The training step of `problem` in `library` by `method` (pyode's loop counting every `count_every`)."""
    check_method(problem, library, method)
    return get_library(library).training_step(problem, method, count_every=count_every)
