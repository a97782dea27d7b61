"""DiffEqFlux.jl through juliacall: the module in julia/src/PyodeReference.jl, one backend per sensealg.

Julia is found (or not) in well under a second, before juliacall is imported: a machine
without it answers at once. `pyode/juliapkg.json` lists the Julia packages, so that on a
machine with network juliacall installs them on first use.
"""

import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._base import AbstractBackend, BackendUnavailable, Result
from ._case import Case

JULIA_MODULE = Path(__file__).resolve().parents[2] / "julia" / "src" / "PyodeReference.jl"
SENSEALGS = ("InterpolatingAdjoint", "QuadratureAdjoint", "BacksolveAdjoint", "GaussAdjoint")
JULIA_MODES = ("auto", "require", "off")


def find_julia() -> str | None:
    """The Julia executable juliacall would use without installing one, or None (no imports)."""
    for variable in ("PYTHON_JULIACALL_EXE", "PYTHON_JULIAPKG_EXE"):
        exe = os.environ.get(variable)
        if exe and Path(exe).is_file():
            return exe
    on_path = shutil.which("julia") or shutil.which("juliaup")
    if on_path:
        return on_path
    project = os.environ.get("PYTHON_JULIAPKG_PROJECT") or os.path.join(sys.prefix, "julia_env")
    installed = Path(project) / "pyjuliapkg" / "install" / "bin" / "julia"
    return str(installed) if installed.is_file() else None


def julia_unavailable_reason(mode: str = "auto") -> str | None:
    """Why the Julia backends cannot run under `mode` (auto, require, off), or None if they can.

    Julia is looked for first (no imports): `auto` runs the backends only where Julia is
    already installed; `require` also lets juliacall install it on first use (unless
    juliapkg is offline); `off` never runs them.
    """
    if mode not in JULIA_MODES:
        raise ValueError(f"unknown julia mode {mode!r}; choose one of {', '.join(JULIA_MODES)}")
    if mode == "off":
        return "disabled in the config (julia: off)"
    searched = "PYTHON_JULIACALL_EXE, PYTHON_JULIAPKG_EXE, julia or juliaup on PATH, juliapkg's install"
    found = find_julia() is not None
    if not found and mode == "auto":
        return f"Julia not found (looked at {searched}); julia: require lets juliacall install it"
    if not found and os.environ.get("PYTHON_JULIAPKG_OFFLINE", "").lower() in ("yes", "true", "1"):
        return f"Julia not found (looked at {searched}) and juliapkg is offline (PYTHON_JULIAPKG_OFFLINE)"
    if importlib.util.find_spec("juliacall") is None:
        return "juliacall is not installed (pip install 'pyode[julia]')"
    if not JULIA_MODULE.is_file():
        return f"the Julia module {JULIA_MODULE} is missing (pyode is not run from its source tree)"
    return None


class DiffEqFluxBackend(AbstractBackend):
    """DiffEqFlux.jl / SciMLSensitivity.jl with one explicit sensealg, through juliacall."""

    def __init__(self, sensealg: str, mode: str = "auto"):
        if sensealg not in SENSEALGS:
            raise ValueError(f"unknown sensealg {sensealg!r}; choose one of {', '.join(SENSEALGS)}")
        self.sensealg = sensealg
        self.mode = mode
        self.name = "diffeqflux-" + sensealg.removesuffix("Adjoint").lower()
        self._versions: dict[str, str] = {}
        self._files: tempfile.TemporaryDirectory | None = None

    def check_available(self, case: Case) -> None:
        reason = julia_unavailable_reason(self.mode)
        if reason is not None:
            raise BackendUnavailable(reason)

    def versions(self) -> dict[str, str]:
        return self._versions

    def prepare(self, case: Case) -> Callable[[float, float], Result]:
        from juliacall import Main as jl

        jl.seval(f'include(raw"{JULIA_MODULE}")')
        run_case = jl.PyodeReference.run_case
        self._files = tempfile.TemporaryDirectory(prefix="pyode-case-")
        case_path = Path(self._files.name) / f"{case.name}.npz"
        case.save(case_path)
        solver = case.solvers["julia"]

        def once(rtol: float, atol: float) -> Result:
            out = run_case(
                str(case_path), solver_name=solver, sensealg_name=self.sensealg, reltol=rtol, abstol=atol
            )
            self._versions = {str(k): str(v) for k, v in out.versions.items()}
            grads = {
                str(k): np.array(v, dtype=float) for k, v in zip(out.grad_names, out.grad_values, strict=True)
            }
            return Result(
                backend=self.name,
                case=case.name,
                trajectory=np.array(out.trajectory, dtype=float),
                grad_y0=np.array(out.grad_y0, dtype=float),
                grad_params={k: grads[k].reshape(v.shape) for k, v in case.params.items()},
                nfe_forward=int(out.nfe_forward),
                nfe_backward=int(out.nfe_backward),
                wall_time=0.0,
                method=str(out.method),
            )

        return once
