"""What produced a result: the code (a digest of pyode's source, its version and git commit), the
software versions and the machine.

`code_digest` is cheap and imports nothing heavy, so that the workflow can give each rule the
digest of the code it runs (Snakemake then reruns the rule when that code changes).
"""

import functools
import hashlib
import importlib.metadata
import platform
import subprocess
from pathlib import Path

PACKAGES = ("pyode", "jax", "jaxlib", "diffrax", "equinox", "optax", "numpy", "scipy", "snakemake")
RESULT_PACKAGES = ("jax", "jaxlib", "diffrax", "equinox", "optax", "numpy", "scipy", "torch")
"""The libraries whose version can change a result (recorded with the code version)."""

PACKAGE_DIR = Path(__file__).resolve().parent
JULIA_DIR = PACKAGE_DIR.parent / "julia"
"""The Julia reference's source, beside the package in a checkout (absent from an installed wheel)."""

EXPERIMENTS_DIR = PACKAGE_DIR / "experiments"


def versions(packages=PACKAGES) -> dict[str, str]:
    """Installed versions of `packages` (missing ones as 'not installed'), Python and the platform."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def experiment_modules() -> list[str]:
    """The names of the experiment modules: pyode/experiments/NAME.py, NAME not starting with `_`."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py") if not p.stem.startswith("_"))


def code_files(experiment: str | None = None, *, julia: bool = False) -> list[Path]:
    """The source files whose content can change the results of `experiment`'s commands.

    That is the whole package except the other experiments' modules (an experiment imports none
    of them, and the layers below the experiments import no experiment: tests/test_layering.py);
    None means the code below the experiments (cross-validation, benchmarks). `julia` adds the
    Julia reference's source.
    """
    experiments = set(experiment_modules())
    if experiment is not None and experiment not in experiments:
        raise ValueError(f"no experiment module {experiment!r}; there are {', '.join(sorted(experiments))}")
    excluded = {EXPERIMENTS_DIR / f"{name}.py" for name in experiments - {experiment}}
    files = [
        path
        for path in PACKAGE_DIR.rglob("*")
        if path.suffix in (".py", ".json")
        and path.is_file()
        and path not in excluded
        and "__pycache__" not in path.parts
    ]
    if julia and JULIA_DIR.is_dir():
        files += [path for path in JULIA_DIR.rglob("*") if path.suffix in (".jl", ".toml") and path.is_file()]
    return sorted(files)


@functools.cache
def code_digest(experiment: str | None = None, *, julia: bool = False) -> str:
    """SHA-256 of the names and bytes of `code_files(experiment, julia=julia)`."""
    digest = hashlib.sha256()
    root = PACKAGE_DIR.parent
    for path in code_files(experiment, julia=julia):
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.cache
def git_commit() -> dict:
    """{"commit", "dirty"} of the git checkout pyode runs from (both None outside one).

    `dirty` is whether the package's or the Julia reference's files differ from the commit.
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        paths = [str(PACKAGE_DIR), *([str(JULIA_DIR)] if JULIA_DIR.is_dir() else [])]
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=normal", "--", *paths],
            cwd=PACKAGE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    changed = [line for line in status.stdout.splitlines() if not line.rstrip().endswith("__pycache__/")]
    return {"commit": commit.stdout.strip(), "dirty": bool(changed) if status.returncode == 0 else None}


def code_version(experiment: str | None = None) -> dict:
    """The code a result came from: pyode's version, git commit and dirty flag, the digest of the
    source it ran (`code_digest` of `experiment`, or of the layers below the experiments for an
    experiment that is not one of pyode's modules), and the versions of the libraries that can
    change a result."""
    return {
        "pyode": _version("pyode"),
        **git_commit(),
        "digest": code_digest(experiment if experiment in experiment_modules() else None),
        **({"experiment": experiment} if experiment else {}),
        **{name: _version(name) for name in RESULT_PACKAGES},
    }


def code_label(experiment: str | None = None) -> str:
    """`code_version` in one line, e.g. "pyode 0.1.0, commit 1a2b3c4d5e6f (dirty), source d7164..."."""
    code = code_version(experiment)
    commit = "no git checkout" if code["commit"] is None else f"commit {code['commit'][:12]}"
    dirty = " (dirty)" if code["dirty"] else ""
    return f"pyode {code['pyode']}, {commit}{dirty}, source {code['digest'][:12]}"


@functools.cache
def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def jax_device() -> str:
    """The platform JAX computes on (cpu, gpu, ...)."""
    import jax

    return jax.default_backend()
