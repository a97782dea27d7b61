"""Position-only series for second-order models: the crossing map g(x) = -x and a damped oscillator.

Both are given as `PositionSeries`: each series starts from a known position x(t0) and is
observed (in position only, with noise) at shared times; held-out series start elsewhere.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._saved import SavedAsArrays

if TYPE_CHECKING:  # jaxtyping only annotates: planning imports this module and needs none
    from jaxtyping import Float


@dataclass(frozen=True)
class PositionSeries(SavedAsArrays):
    """Positions (dim entries) of several series at shared times `ts` (ts[0] = t0).

    `initial` (N, dim) is each training series' exact x(t0); `observed` (N, T, dim) its noisy
    positions at `ts` and `truth` the noise-free ones; `extrapolation_truth` (N, E, dim) its
    true positions at `extrapolation_ts`, past ts[-1] (E may be 0). Held-out series start at
    `test_initial` (M, dim); `test_truth` (M, T + E, dim) holds their positions at ts and then
    at extrapolation_ts.
    """

    KIND = "positions"
    ARRAYS = (
        "ts",
        "extrapolation_ts",
        "initial",
        "observed",
        "truth",
        "extrapolation_truth",
        "test_initial",
        "test_truth",
    )
    NOT_THIS = "does not hold position series"

    task: str
    settings: dict
    noise: float
    ts: Float[np.ndarray, " time"]
    extrapolation_ts: Float[np.ndarray, " later"]
    initial: Float[np.ndarray, "n dim"]
    observed: Float[np.ndarray, "n time dim"]
    truth: Float[np.ndarray, "n time dim"]
    extrapolation_truth: Float[np.ndarray, "n later dim"]
    test_initial: Float[np.ndarray, "m dim"]
    test_truth: Float[np.ndarray, "m all dim"]

    @property
    def all_ts(self) -> np.ndarray:
        """The observation times followed by the extrapolation times."""
        return np.concatenate([self.ts, self.extrapolation_ts])


def crossing(points: int = 40, *, test_points: int = 21, t1: float = 1.0, seed: int = 0) -> PositionSeries:
    """ANODE's 1-D crossing problem (Dupont et al. 2019): carry each x0 in [-1, 1] to g(x0) = -x0 at t1.

    Training starts are uniform in [-1, 1]; held-out starts are evenly spaced there. A flow
    of x alone (a NODE) preserves order, so it cannot map x to -x: its best is a map near 0,
    with mean squared error near E[x^2] = 1/3.
    """
    if points < 2 or test_points < 2:
        raise ValueError(f"need at least 2 training and 2 test points, got {points} and {test_points}")
    if t1 <= 0:
        raise ValueError(f"t1 must be positive, got {t1}")
    rng = np.random.default_rng([seed, 1])
    x0 = rng.uniform(-1.0, 1.0, (points, 1))
    test_x0 = np.linspace(-1.0, 1.0, test_points)[:, None]
    truth = np.stack([x0, -x0], axis=1)
    return PositionSeries(
        task="crossing",
        settings={"points": points, "test_points": test_points, "t1": t1, "seed": seed},
        noise=0.0,
        ts=np.array([0.0, t1]),
        extrapolation_ts=np.zeros(0),
        initial=x0,
        observed=truth.copy(),
        truth=truth,
        extrapolation_truth=np.zeros((points, 0, 1)),
        test_initial=test_x0,
        test_truth=np.stack([test_x0, -test_x0], axis=1),
    )


def damped_oscillator_position(t, x0, v0, gamma: float, omega: float):
    """x(t) of x'' = -2 gamma x' - (gamma^2 + omega^2) x from (x0, v0) at t = 0 (underdamped, exact)."""
    t = np.asarray(t)
    return np.exp(-gamma * t) * (x0 * np.cos(omega * t) + (v0 + gamma * x0) / omega * np.sin(omega * t))


def damped_oscillator(
    trajectories: int = 8,
    *,
    test_trajectories: int = 8,
    observations: int = 50,
    t1: float = 10.0,
    extrapolate: float = 10.0,
    extrapolation_points: int = 50,
    gamma: float = 0.1,
    omega: float = 1.0,
    box: float = 2.0,
    velocity: float = 1.0,
    noise: float = 0.05,
    seed: int = 0,
) -> PositionSeries:
    """A damped oscillator x'' = -2 gamma x' - (gamma^2 + omega^2) x (Norcliffe et al.'s, gamma = 0.1,
    omega = 1) observed in position only.

    Each series starts at x0 uniform in [-box, box] with the same initial velocity
    `velocity` (not observed: a model must learn it from x0), and is observed at
    `observations` evenly spaced times on [0, t1] with Gaussian noise; the truth continues
    on `extrapolation_points` times over (t1, t1 + extrapolate].
    """
    if trajectories < 1 or test_trajectories < 1 or observations < 2 or extrapolation_points < 1:
        raise ValueError(
            "need trajectories, test_trajectories, extrapolation_points >= 1 and observations >= 2"
        )
    if min(t1, extrapolate, box, omega) <= 0 or gamma < 0 or noise < 0:
        raise ValueError("t1, extrapolate, box and omega must be positive; gamma and noise non-negative")
    rng = np.random.default_rng([seed, 2])
    x0 = rng.uniform(-box, box, (trajectories, 1))
    test_x0 = rng.uniform(-box, box, (test_trajectories, 1))
    ts = np.linspace(0.0, t1, observations)
    later = np.linspace(t1, t1 + extrapolate, extrapolation_points + 1)[1:]

    def positions(starts, times):
        return damped_oscillator_position(times[None, :, None], starts[:, None, :], velocity, gamma, omega)

    truth = positions(x0, ts)
    observed = truth + noise * rng.standard_normal(truth.shape)
    observed[:, 0] = x0
    settings = {
        "trajectories": trajectories,
        "test_trajectories": test_trajectories,
        "observations": observations,
        "t1": t1,
        "extrapolate": extrapolate,
        "extrapolation_points": extrapolation_points,
        "gamma": gamma,
        "omega": omega,
        "box": box,
        "velocity": velocity,
        "noise": noise,
        "seed": seed,
    }
    return PositionSeries(
        task="oscillator",
        settings=settings,
        noise=noise,
        ts=ts,
        extrapolation_ts=later,
        initial=x0,
        observed=observed,
        truth=truth,
        extrapolation_truth=positions(x0, later),
        test_initial=test_x0,
        test_truth=positions(test_x0, np.concatenate([ts, later])),
    )


POSITION_TASKS = {"crossing": crossing, "oscillator": damped_oscillator}
"""The position-only tasks by name: generator(**options, seed=...) -> PositionSeries."""


def check_position_options(task: str, options: dict) -> None:
    """A ValueError (or TypeError) naming the problem if `options` cannot make `task`'s data."""
    if task not in POSITION_TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(POSITION_TASKS)}")
    parameters = inspect.signature(POSITION_TASKS[task]).parameters
    unknown = sorted(set(options) - set(parameters) | ({"seed"} & set(options)))
    if unknown:
        allowed = sorted(set(parameters) - {"seed"})
        raise ValueError(f"{task} takes no option {', '.join(unknown)}; it takes {', '.join(allowed)}")
    POSITION_TASKS[task](**options)
