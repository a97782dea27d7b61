"""The one small interface every backend implements, its result, and the registry by name."""

import abc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import UserError, code_label
from ._case import Case


class BackendUnavailable(UserError, RuntimeError):
    """This backend cannot run on this machine (the message says why)."""


@dataclass
class Result:
    """What a backend returns for a case. Gradients keep the case's parameter names and layouts."""

    backend: str
    case: str
    trajectory: np.ndarray
    grad_y0: np.ndarray
    grad_params: dict[str, np.ndarray]
    nfe_forward: int
    nfe_backward: int
    wall_time: float
    method: str
    versions: dict[str, str] = field(default_factory=dict)
    rtol: float = float("nan")
    atol: float = float("nan")

    def save(self, path: str | Path) -> None:
        """Write the arrays to `path` (.npz) with everything else as JSON in its `meta` entry."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {k: getattr(self, k) for k in self._scalars()}
        arrays = {f"grad_{k}": v for k, v in self.grad_params.items()}
        with open(path, "wb") as f:
            np.savez(
                f, trajectory=self.trajectory, grad_y0=self.grad_y0, meta=np.array(json.dumps(meta)), **arrays
            )

    @staticmethod
    def _scalars() -> tuple[str, ...]:
        return (
            "backend",
            "case",
            "nfe_forward",
            "nfe_backward",
            "wall_time",
            "method",
            "versions",
            "rtol",
            "atol",
        )


@dataclass
class Skipped:
    """A backend that did not run a case (`skipped`: cannot run here) or broke on it (`failed`), and why.

    Never a pass.
    """

    backend: str
    case: str
    reason: str
    status: str = "skipped"

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez(f, skipped=np.array(json.dumps(self.__dict__)))


def load_result(path: str | Path) -> Result | Skipped:
    """Read a result written by `Result.save` or `Skipped.save`."""
    with np.load(path) as data:
        if "skipped" in data.files:
            return Skipped(**json.loads(str(data["skipped"])))
        meta = json.loads(str(data["meta"]))
        grads = {
            k.removeprefix("grad_"): data[k] for k in data.files if k.startswith("grad_") and k != "grad_y0"
        }
        return Result(trajectory=data["trajectory"], grad_y0=data["grad_y0"], grad_params=grads, **meta)


class AbstractBackend(abc.ABC):
    """An independent implementation that solves a case and differentiates its loss."""

    name: str

    def check_available(self, case: Case) -> None:
        """Raise `BackendUnavailable` (quickly, importing nothing heavy) if it cannot run `case` here."""
        return None

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the software doing the work."""

    @abc.abstractmethod
    def prepare(self, case: Case) -> Callable[[float, float], Result]:
        """Build a callable running the case once at the given (rtol, atol)."""

    def run(self, case: Case, tolerances: list[tuple[float, float]] | None = None) -> list[Result]:
        """Run the case at each (rtol, atol) (the case's own by default), timing each run.

        The first run is repeated before timing: it pays for compilation where the backend compiles.
        """
        self.check_available(case)
        tolerances = tolerances or [(case.rtol, case.atol)]
        once = self.prepare(case)
        once(*tolerances[0])
        results = []
        for rtol, atol in tolerances:
            start = time.perf_counter()
            result = once(rtol, atol)
            result.wall_time = time.perf_counter() - start
            result.versions = {**self.versions(), "pyode_code": code_label()}
            result.rtol, result.atol = float(rtol), float(atol)
            results.append(result)
        return results
