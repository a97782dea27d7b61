"""Paths of diffusion processes with known coefficients, simulated exactly, for fitting neural SDEs.

Two scalar Ito processes whose transition laws are known in closed form, so that the paths
carry no discretisation error:

- `ou`, Ornstein-Uhlenbeck: dX = theta (mean - X) dt + sigma dW (additive noise);
- `gbm`, geometric Brownian motion: dX = mu X dt + sigma X dW (noise proportional to the state).

Each path starts from its own point drawn uniformly in [x0_low, x0_high] (so that the drift
is seen away from equilibrium too) and is observed every `dt` on [0, t1]. The last
`test_paths` paths are held out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._saved import SavedAsArrays

if TYPE_CHECKING:  # jaxtyping only annotates: planning imports this module and needs none
    from jaxtyping import Float

PROCESS_DEFAULTS: dict[str, dict] = {
    "ou": {"theta": 2.0, "mean": 1.0, "sigma": 0.5, "x0_low": -1.0, "x0_high": 3.0},
    "gbm": {"mu": 0.5, "sigma": 0.3, "x0_low": 0.5, "x0_high": 2.0},
}
"""Each process's coefficients and the range of its starting points."""

SAMPLING_DEFAULTS = {"paths": 400, "test_paths": 100, "t1": 2.0, "dt": 0.01}


def _ou_step(x, dt, noise, *, theta, mean, sigma):
    decay = np.exp(-theta * dt)
    return mean + (x - mean) * decay + sigma * np.sqrt((1 - decay**2) / (2 * theta)) * noise


def _gbm_step(x, dt, noise, *, mu, sigma):
    return x * np.exp((mu - 0.5 * sigma**2) * dt + sigma * np.sqrt(dt) * noise)


EXACT_STEPS = {"ou": _ou_step, "gbm": _gbm_step}


def true_drift(process: str, x: np.ndarray, **options) -> np.ndarray:
    """The drift of `process` at states `x` (NumPy or JAX arrays), its coefficients from `options`
    (defaults filled in; other options ignored)."""
    c = {**PROCESS_DEFAULTS[process], **options}
    return c["theta"] * (c["mean"] - x) if process == "ou" else c["mu"] * x


def true_diffusion(process: str, x: np.ndarray, **options) -> np.ndarray:
    """The diffusion coefficient (noise scale) of `process` at states `x` (NumPy or JAX arrays)."""
    c = {**PROCESS_DEFAULTS[process], **options}
    return c["sigma"] + 0.0 * x if process == "ou" else c["sigma"] * x


def true_moments(process: str, x0: np.ndarray, ts: np.ndarray, **options) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over paths started at each of `x0`, at times `ts` (exact)."""
    c = {**PROCESS_DEFAULTS[process], **options}
    x0, t = np.asarray(x0, np.float64)[:, None], np.asarray(ts, np.float64)[None, :]
    if process == "ou":
        means = c["mean"] + (x0 - c["mean"]) * np.exp(-c["theta"] * t)
        variances = np.broadcast_to(
            c["sigma"] ** 2 * (1 - np.exp(-2 * c["theta"] * t)) / (2 * c["theta"]), means.shape
        )
    else:
        means = x0 * np.exp(c["mu"] * t)
        variances = means**2 * (np.exp(c["sigma"] ** 2 * t) - 1)
    mean = means.mean(axis=0)
    return mean, np.sqrt(np.maximum((variances + means**2).mean(axis=0) - mean**2, 0.0))


@dataclass(frozen=True)
class Paths(SavedAsArrays):
    """Paths of a scalar process observed at common times `ts`; `xs` is (path, time, 1), the first
    `train_paths` for training, the rest held out."""

    KIND = "paths"
    ARRAYS = ("ts", "xs")
    NOT_THIS = "does not hold paths of a process"

    process: str
    options: dict
    ts: Float[np.ndarray, " time"]
    xs: Float[np.ndarray, "path time 1"]
    train_paths: int

    @property
    def train(self) -> np.ndarray:
        return self.xs[: self.train_paths]

    @property
    def test(self) -> np.ndarray:
        return self.xs[self.train_paths :]

    def drift(self, x: np.ndarray) -> np.ndarray:
        return true_drift(self.process, x, **self.options)

    def diffusion(self, x: np.ndarray) -> np.ndarray:
        return true_diffusion(self.process, x, **self.options)

    def moments(self, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact mean and standard deviation at `ts` over paths started at `x0`."""
        return true_moments(self.process, x0, self.ts, **self.options)


def check_process_options(process: str, options: dict) -> None:
    """A ValueError naming the problem if `process` does not take `options` or they cannot be simulated."""
    if process not in PROCESS_DEFAULTS:
        raise ValueError(f"unknown process {process!r}; choose one of {', '.join(PROCESS_DEFAULTS)}")
    accepted = set(PROCESS_DEFAULTS[process]) | set(SAMPLING_DEFAULTS)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"process {process!r} takes no option {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(accepted))}"
        )
    c = {**PROCESS_DEFAULTS[process], **SAMPLING_DEFAULTS, **options}
    if c["paths"] < 1 or c["test_paths"] < 1:
        raise ValueError(
            f"need at least one training and one test path, got {c['paths']} and {c['test_paths']}"
        )
    if not 0 < c["dt"] <= c["t1"]:
        raise ValueError(f"need 0 < dt <= t1, got dt = {c['dt']} and t1 = {c['t1']}")
    if c["sigma"] <= 0 or c["x0_low"] > c["x0_high"]:
        raise ValueError("need sigma > 0 and x0_low <= x0_high")
    if process == "ou" and c["theta"] <= 0:
        raise ValueError(f"the Ornstein-Uhlenbeck process needs theta > 0, got {c['theta']}")
    if process == "gbm" and c["x0_low"] <= 0:
        raise ValueError(
            f"geometric Brownian motion needs positive starting points, got x0_low = {c['x0_low']}"
        )


def simulate_paths(process: str, *, seed: int = 0, **options) -> Paths:
    """`paths` + `test_paths` paths of `process`, exact at every observation time (seeded)."""
    check_process_options(process, options)
    c = {**PROCESS_DEFAULTS[process], **SAMPLING_DEFAULTS, **options}
    rng = np.random.default_rng(seed)
    count = c["paths"] + c["test_paths"]
    steps = int(round(c["t1"] / c["dt"]))
    ts = np.arange(steps + 1) * c["dt"]
    xs = np.empty((count, steps + 1))
    xs[:, 0] = rng.uniform(c["x0_low"], c["x0_high"], count)
    step: Callable = EXACT_STEPS[process]
    coefficients = {k: c[k] for k in PROCESS_DEFAULTS[process] if k not in ("x0_low", "x0_high")}
    for n in range(steps):
        xs[:, n + 1] = step(xs[:, n], c["dt"], rng.standard_normal(count), **coefficients)
    return Paths(process, dict(options), ts, xs[:, :, None], c["paths"])
