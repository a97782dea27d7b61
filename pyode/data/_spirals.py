"""The bi-directional spirals of Chen et al. (2018, section 5.1) for latent ODEs: irregularly observed,
noisy windows of two spirals, one clockwise and one counter-clockwise.

The generator follows torchdiffeq's `examples/latent_ode.py` (the authors' code): on a
common timeline of `total_points` equally spaced times over [0, stop], the
counter-clockwise spiral is r = a + b theta centred at (5, 0) with theta = t, the clockwise
one r = a + 50 b / theta centred at (-5, 0) with theta = stop + 1 - t. Each series is a
window of `window` consecutive times from a random start (observations are drawn from it);
a held-out series is followed by `extrapolation` times on which the truth is kept for
testing. Training windows start anywhere from the `window`-th time to the last possible one
(the example's starts), so together they cover the paths to their ends, and every held-out
series extrapolates into a stretch of path that training windows have seen. Gaussian noise
of standard deviation `noise` is added to every coordinate. Of the `window` times, each
series keeps `observations` chosen at random without replacement (the paper's irregular
times).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._saved import SavedAsArrays

if TYPE_CHECKING:  # jaxtyping only annotates: planning imports this module and needs none
    from jaxtyping import Bool, Float, Int

PARTS = ("train", "test")


@dataclass(frozen=True)
class SpiralSeries(SavedAsArrays):
    """Training and held-out series on one relative time grid.

    `grid` (G,) starts at 0; its first `window` times are the observation window, the rest
    the extrapolation window. For each part: `truth` and `noisy` (N, L, 2), on the whole grid
    for the test part (L = G) and on the window for the training part (L = `window`: training
    never looks past it), `index` (N, n) the sorted grid positions each series observes,
    `clockwise` (N,).
    """

    KIND = "spirals"
    ARRAYS = ("grid",) + tuple(
        f"{part}_{name}" for part in PARTS for name in ("truth", "noisy", "index", "clockwise")
    )
    NOT_THIS = "does not hold spiral series"

    settings: dict
    noise: float
    window: int
    grid: Float[np.ndarray, " grid"]
    train_truth: Float[np.ndarray, "n grid 2"]
    train_noisy: Float[np.ndarray, "n grid 2"]
    train_index: Int[np.ndarray, "n observations"]
    train_clockwise: Bool[np.ndarray, " n"]
    test_truth: Float[np.ndarray, "m grid 2"]
    test_noisy: Float[np.ndarray, "m grid 2"]
    test_index: Int[np.ndarray, "m observations"]
    test_clockwise: Bool[np.ndarray, " m"]

    def observed(self, part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(times (N, n), noisy values (N, n, 2), grid index (N, n), mask (N, n)) of a part's observations."""
        index, noisy = getattr(self, f"{part}_index"), getattr(self, f"{part}_noisy")
        values = np.take_along_axis(noisy, index[..., None], axis=1)
        return self.grid[index], values, index, np.ones(index.shape, noisy.dtype)


def spiral_paths(
    total_points: int, stop: float, a: float, b: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, clockwise path, counter-clockwise path): the two spirals on the common timeline."""
    times = np.linspace(0.0, stop, total_points)
    theta_cw = stop + 1.0 - times
    radius_cw = a + b * 50.0 / theta_cw
    clockwise = np.stack([radius_cw * np.cos(theta_cw) - 5.0, radius_cw * np.sin(theta_cw)], axis=1)
    radius_cc = a + b * times
    counter = np.stack([radius_cc * np.cos(times) + 5.0, radius_cc * np.sin(times)], axis=1)
    return times, clockwise, counter


def bidirectional_spirals(
    spirals: int = 1000,
    *,
    test_spirals: int = 100,
    observations: int = 30,
    window: int = 100,
    extrapolation: int = 100,
    total_points: int = 1000,
    stop: float = 6 * np.pi,
    noise: float = 0.3,
    a: float = 0.0,
    b: float = 0.3,
    seed: int = 0,
) -> SpiralSeries:
    """`spirals` training and `test_spirals` held-out series (defaults: torchdiffeq's example, the
    paper's 1000 spirals), half of each part clockwise.

    The spirals, their starts and their noise depend on `seed` alone, so data sets that
    differ only in `observations` hold the same series observed at different times.
    """
    check_spiral_options(spirals, test_spirals, observations, window, extrapolation, total_points, noise)
    times, clockwise_path, counter_path = spiral_paths(total_points, stop, a, b)
    rng = np.random.default_rng([seed, 0])
    parts = {}
    for part, count, length in (("train", spirals, window), ("test", test_spirals, window + extrapolation)):
        clockwise = rng.permutation(np.arange(count) < count // 2)
        starts = rng.integers(window, total_points - length + 1, size=count)
        paths = np.where(clockwise[:, None, None], clockwise_path[None], counter_path[None])
        truth = np.stack([path[start : start + length] for path, start in zip(paths, starts)])
        noisy = truth + noise * rng.standard_normal(truth.shape)
        parts[part] = (truth, noisy, clockwise)
    subsets = np.random.default_rng([seed, observations])
    settings = {
        "spirals": spirals,
        "test_spirals": test_spirals,
        "observations": observations,
        "window": window,
        "extrapolation": extrapolation,
        "total_points": total_points,
        "stop": stop,
        "noise": noise,
        "a": a,
        "b": b,
        "seed": seed,
    }
    arrays = {"grid": times[: window + extrapolation] - times[0]}
    for part, (truth, noisy, clockwise) in parts.items():
        index = np.sort(
            np.stack([subsets.choice(window, observations, replace=False) for _ in range(len(truth))]), axis=1
        )
        arrays.update(
            {
                f"{part}_truth": truth,
                f"{part}_noisy": noisy,
                f"{part}_index": index,
                f"{part}_clockwise": clockwise,
            }
        )
    return SpiralSeries(settings=settings, noise=noise, window=window, **arrays)


def check_spiral_options(
    spirals, test_spirals, observations, window, extrapolation, total_points, noise
) -> None:
    """A ValueError naming the option if these spiral options cannot make a data set."""
    if spirals < 2 or test_spirals < 2:
        raise ValueError(f"need at least 2 training and 2 test spirals, got {spirals} and {test_spirals}")
    if not 1 <= observations <= window:
        raise ValueError(f"observations must be between 1 and window ({window}), got {observations}")
    if extrapolation < 1:
        raise ValueError(f"extrapolation must be at least 1, got {extrapolation}")
    if total_points < 2 * window + extrapolation:
        raise ValueError(
            f"total_points ({total_points}) must be at least 2 window + extrapolation "
            f"({2 * window + extrapolation}): starts are drawn after the first window"
        )
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")
