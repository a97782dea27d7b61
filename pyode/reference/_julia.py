"""DiffEqFlux.jl through juliacall: the module in julia/src/PyodeReference.jl, one backend per sensealg.

Julia is found (or not) in well under a second, before juliacall is imported: a machine
without it answers at once. `pyode/juliapkg.json` lists the Julia packages, so that on a
machine with network juliacall installs them on first use.
"""

import importlib.util
import json
import os
import shutil
import subprocess
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


JULIA_MINIMUM = (1, 10, 3)
"""The oldest Julia juliacall starts (its juliapkg.json: "julia": "^1.10.3")."""
JULIA_PACKAGES = ("PythonCall", "DiffEqFlux", "SciMLSensitivity", "OrdinaryDiffEq", "Lux", "Zygote", "NPZ")
"""Packages a user-made Julia project (PYTHON_JULIACALL_PROJECT) must hold: juliacall installs none there."""


def find_julia() -> str | None:
    """The Julia executable juliacall would use without installing one, or None (no imports)."""
    return _locate_julia()[0]


def julia_unavailable_reason(mode: str = "auto") -> str | None:
    """Why the Julia backends cannot run under `mode` (auto, require, off), or None if they can.

    Decided in well under a second, without importing juliacall and without the network:
    a usable Julia must already be installed (`require` does not let juliacall download one,
    so that a workflow fails at its start rather than after its other jobs; run `python -c
    "import juliacall"` once on a networked machine to install one). `off` never runs them.
    """
    if mode not in JULIA_MODES:
        raise ValueError(f"unknown julia mode {mode!r}; choose one of {', '.join(JULIA_MODES)}")
    if mode == "off":
        return "disabled in the config (julia: off)"
    executable, problem = _locate_julia()
    if executable is None:
        return problem
    if importlib.util.find_spec("juliacall") is None:
        return "juliacall is not installed (pip install 'pyode[julia]')"
    if not JULIA_MODULE.is_file():
        return f"the Julia module {JULIA_MODULE} is missing (pyode is not run from its source tree)"
    return None


def juliapkg_project() -> Path:
    """The Julia project juliapkg manages (where it also installs Julia): PYTHON_JULIAPKG_PROJECT, else
    `julia_env` in the virtual environment or conda prefix, else `pyjuliapkg` in the Julia depot."""
    if os.environ.get("PYTHON_JULIAPKG_PROJECT"):
        return Path(os.environ["PYTHON_JULIAPKG_PROJECT"])
    prefix = sys.prefix if sys.prefix != sys.base_prefix else os.environ.get("CONDA_PREFIX")
    if prefix:
        return Path(prefix) / "julia_env"
    depot = os.environ.get("JULIA_DEPOT_PATH", "").split(os.pathsep)[0] or str(Path.home() / ".julia")
    return Path(depot) / "environments" / "pyjuliapkg"


def _locate_julia() -> tuple[str | None, str]:
    """(a usable Julia executable, "") or (None, why there is none), as juliacall would look."""
    exe, project = os.environ.get("PYTHON_JULIACALL_EXE"), os.environ.get("PYTHON_JULIACALL_PROJECT")
    if exe or project:
        return _user_julia(exe, project)
    searched = ["PYTHON_JULIAPKG_EXE", "juliapkg's install", "juliaup's installed versions", "julia on PATH"]
    candidates = [
        os.environ.get("PYTHON_JULIAPKG_EXE"),
        str(juliapkg_project() / "pyjuliapkg" / "install" / "bin" / "julia"),
        *_juliaup_versions(),
        shutil.which("julia"),
    ]
    too_old = []
    for candidate in filter(None, candidates):
        version = _julia_version(candidate)
        if version is not None and version >= JULIA_MINIMUM:
            return candidate, ""
        if version is not None:
            too_old.append(f"{candidate} is Julia {'.'.join(map(str, version))}")
    minimum = ".".join(map(str, JULIA_MINIMUM))
    if too_old:
        return None, f"no Julia >= {minimum} found ({'; '.join(too_old)}); juliacall needs {minimum} or newer"
    return None, (
        f"Julia not found (looked at {', '.join(searched)}; juliaup itself is an installer, not a Julia); "
        "install one, e.g. `juliaup add 1.10`"
    )


def _user_julia(exe: str | None, project: str | None) -> tuple[str | None, str]:
    """PYTHON_JULIACALL_EXE with PYTHON_JULIACALL_PROJECT: juliacall then skips juliapkg entirely."""
    if not (exe and project):
        return None, (
            "PYTHON_JULIACALL_EXE and PYTHON_JULIACALL_PROJECT must be set together (juliacall refuses one "
            "alone); unset both to let juliapkg find Julia"
        )
    executable = shutil.which(exe)
    if executable is None or _julia_version(executable) is None:
        return None, f"PYTHON_JULIACALL_EXE={exe} is not a Julia executable"
    if _julia_version(executable) < JULIA_MINIMUM:
        return None, f"PYTHON_JULIACALL_EXE={exe} is older than Julia {'.'.join(map(str, JULIA_MINIMUM))}"
    manifest = Path(project) / "Manifest.toml"
    text = manifest.read_text() if manifest.is_file() else ""
    missing = [
        name for name in JULIA_PACKAGES if f"[[deps.{name}]]" not in text and f"[[{name}]]" not in text
    ]
    if missing:
        return None, (
            f"PYTHON_JULIACALL_PROJECT={project} lacks {', '.join(missing)}: with PYTHON_JULIACALL_EXE set, "
            "juliacall installs nothing, so add them there (see pyode/juliapkg.json)"
        )
    return executable, ""


def _juliaup_versions() -> list[str]:
    """Julia binaries juliaup has installed (from its juliaup.json), newest first."""
    depot = os.environ.get("JULIAUP_DEPOT_PATH") or str(Path.home() / ".julia")
    index = Path(depot) / "juliaup" / "juliaup.json"
    try:
        installed = json.loads(index.read_text()).get("InstalledVersions", {})
    except (OSError, ValueError):
        return []
    found = []
    for entry in installed.values():
        path = Path(entry.get("BinaryPath") or Path(entry.get("Path", "")) / "bin" / "julia")
        found.append(str(path if path.is_absolute() else index.parent / path))
    return sorted(found, reverse=True)


def _julia_version(executable: str) -> tuple[int, ...] | None:
    """The version `executable --version` prints ("julia version 1.10.4"), or None if it is no Julia."""
    try:
        words = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=20, check=True
        ).stdout.split()
        return tuple(int(part) for part in words[2].split("-")[0].split(".")[:3])
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
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
