"""Checking a generator's options against its signature, before anything is generated."""

import inspect
from collections.abc import Callable


def check_generator_options(what: str, name: str, generators: dict[str, Callable], options: dict) -> None:
    """A ValueError naming `name` if it is not a key of `generators` (a `what`: system, dataset),
    or any option its generator does not take (the seed is given apart)."""
    if name not in generators:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(generators)}")
    known = set(inspect.signature(generators[name]).parameters) - {"seed"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for {what} {name!r}; known: {sorted(known)}")
