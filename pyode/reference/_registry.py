"""Backends and libraries by name, and running a backend on a case file into a result file."""

import re
import traceback
from pathlib import Path

from ._base import AbstractBackend, BackendUnavailable, Result, Skipped
from ._case import load_case
from ._julia import DiffEqFluxBackend
from ._library import AbstractLibrary, one_line
from ._pyode import PyodeBackend, PyodeLibrary
from ._scipy import ScipyBackend, ScipyLibrary
from ._scratch import ScratchBackend, ScratchLibrary
from ._torch import TorchdiffeqBackend, TorchdiffeqLibrary
from ._torchode import TorchodeBackend, TorchodeLibrary

BACKENDS = {
    "pyode-checkpoint": lambda julia: PyodeBackend("checkpoint"),
    "pyode-backsolve": lambda julia: PyodeBackend("backsolve"),
    "pyode-backsolve-seminorm": lambda julia: PyodeBackend("backsolve-seminorm"),
    "pyode-backsolve-rms": lambda julia: PyodeBackend("backsolve-rms"),
    "torchdiffeq-odeint": lambda julia: TorchdiffeqBackend(adjoint=False),
    "torchdiffeq-adjoint": lambda julia: TorchdiffeqBackend(adjoint=True),
    "torchdiffeq-adjoint-seminorm": lambda julia: TorchdiffeqBackend(adjoint=True, seminorm=True),
    "torchode": lambda julia: TorchodeBackend(),
    "scipy": lambda julia: ScipyBackend(),
    "scratch": lambda julia: ScratchBackend(),
    "diffeqflux-interpolating": lambda julia: DiffEqFluxBackend("InterpolatingAdjoint", julia),
    "diffeqflux-quadrature": lambda julia: DiffEqFluxBackend("QuadratureAdjoint", julia),
    "diffeqflux-backsolve": lambda julia: DiffEqFluxBackend("BacksolveAdjoint", julia),
    "diffeqflux-gauss": lambda julia: DiffEqFluxBackend("GaussAdjoint", julia),
}
"""Every backend by name; each factory takes the Julia mode (auto, require, off)."""


LIBRARIES: dict[str, AbstractLibrary] = {
    library.name: library
    for library in (PyodeLibrary(), TorchdiffeqLibrary(), TorchodeLibrary(), ScipyLibrary(), ScratchLibrary())
}
"""Every library the benchmarks compare, by name (DiffEqFlux is a cross-validation backend only)."""


def get_library(name: str) -> AbstractLibrary:
    """The library called `name`; a clear error lists the valid names."""
    if name not in LIBRARIES:
        raise ValueError(f"unknown library {name!r}; choose one of {', '.join(LIBRARIES)}")
    return LIBRARIES[name]


def get_backend(name: str, *, julia: str = "auto") -> AbstractBackend:
    """The backend called `name`; a clear error lists the valid names."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name](julia)


def run_backend(
    name: str,
    case_path: str | Path,
    out_paths: list[str | Path],
    *,
    tolerances: list[tuple[float, float]] | None = None,
    julia: str = "auto",
) -> list[Result | Skipped]:
    """Run backend `name` on a case file (at each of `tolerances`), writing one result file each.

    A backend that cannot run here writes `Skipped` files with the reason, unless it was
    required (`julia="require"` for the DiffEqFlux backends): then `BackendUnavailable` is raised.
    A backend that breaks on the case (e.g. a backward solve that diverges) writes `Skipped`
    files of status `failed` with the error, after printing its traceback.
    """
    case = load_case(case_path)
    tolerances = tolerances or [(case.rtol, case.atol)]
    if len(out_paths) != len(tolerances):
        raise ValueError(f"{len(tolerances)} tolerances but {len(out_paths)} output files")
    backend = get_backend(name, julia=julia)
    try:
        results = backend.run(case, tolerances)
    except BackendUnavailable as error:
        if julia == "require" and isinstance(backend, DiffEqFluxBackend):
            raise
        results = [Skipped(name, case.name, str(error)) for _ in tolerances]
    except Exception as error:  # a failure is a result of the cross-validation
        traceback.print_exc()
        results = [Skipped(name, case.name, failure_reason(error), status="failed") for _ in tolerances]
    for result, path in zip(results, out_paths, strict=True):
        result.save(path)
    return results


def failure_reason(error: Exception) -> str:
    """One line saying why a run broke: the innermost `SomeError: message` line of the message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[\w.]*(Error|Exception): ", line)]
    return named[-1] if named else one_line(error)
