"""Two-class point sets in the plane for neural ODE classifiers."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._options import check_generator_options
from ._saved import SavedAsArrays

if TYPE_CHECKING:  # jaxtyping only annotates: planning imports this module and needs none
    from jaxtyping import Float, Int


@dataclass(frozen=True)
class Split(SavedAsArrays):
    """A labelled data set divided into train and test parts."""

    KIND = "split"
    ARRAYS = ("x_train", "y_train", "x_test", "y_test")
    NOT_THIS = "is not a two-class data split"

    x_train: Float[np.ndarray, "n 2"]
    y_train: Int[np.ndarray, " n"]
    x_test: Float[np.ndarray, "m 2"]
    y_test: Int[np.ndarray, " m"]


def two_spirals(
    points_per_class: int = 1000, *, turns: float = 1.5, noise: float = 0.05, seed: int = 0
) -> tuple[Float[np.ndarray, "n 2"], Int[np.ndarray, " n"]]:
    """Two interleaving spirals (class 0 and its half-turn rotation, class 1).

    Radius grows linearly with the angle from 0.1 to 1; each arm makes `turns` turns.
    Gaussian noise of standard deviation `noise` is added to every coordinate.
    """
    _check_size(points_per_class, noise)
    if turns <= 0:
        raise ValueError(f"turns must be positive, got {turns}")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label in (0, 1):
        s = rng.uniform(0.0, 1.0, points_per_class)
        angle = 2 * np.pi * turns * s + np.pi * label
        radius = 0.1 + 0.9 * s
        points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        xs.append(points + noise * rng.standard_normal(points.shape))
        ys.append(np.full(points_per_class, label))
    return _shuffle(np.concatenate(xs), np.concatenate(ys), rng)


def concentric_circles(
    points_per_class: int = 1000,
    *,
    inner_radius: float = 0.5,
    ring: tuple[float, float] = (1.0, 1.5),
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[Float[np.ndarray, "n 2"], Int[np.ndarray, " n"]]:
    """A disc of radius `inner_radius` (class 0) inside a ring ring[0] < r < ring[1] (class 1).

    Points are uniform in area. A flow in the plane cannot separate these linearly: it is
    a homeomorphism and cannot carry the disc out through the ring.
    """
    _check_size(points_per_class, noise)
    low, high = ring
    if not 0 < inner_radius < low < high:
        raise ValueError(f"need 0 < inner_radius < ring[0] < ring[1], got {inner_radius}, {ring}")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, (r_min, r_max) in enumerate([(0.0, inner_radius), (low, high)]):
        radius = np.sqrt(rng.uniform(r_min**2, r_max**2, points_per_class))
        angle = rng.uniform(0.0, 2 * np.pi, points_per_class)
        points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        xs.append(points + noise * rng.standard_normal(points.shape))
        ys.append(np.full(points_per_class, label))
    return _shuffle(np.concatenate(xs), np.concatenate(ys), rng)


GENERATORS = {"spiral": two_spirals, "circles": concentric_circles}


def make_split(dataset: str, *, test_fraction: float = 0.2, seed: int = 0, **options) -> Split:
    """Generate `dataset` ('spiral' or 'circles') and split it into train and test parts."""
    check_generator_options("dataset", dataset, GENERATORS, options)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if "ring" in options:
        options["ring"] = tuple(options["ring"])
    x, y = GENERATORS[dataset](seed=seed, **options)
    n_test = int(round(test_fraction * len(x)))
    return Split(
        x_train=x[n_test:].astype(np.float32),
        y_train=y[n_test:].astype(np.int32),
        x_test=x[:n_test].astype(np.float32),
        y_test=y[:n_test].astype(np.int32),
    )


def split_sizes(dataset: str, *, test_fraction: float = 0.2, **options) -> tuple[int, int]:
    """(training, test) sizes of the split `make_split` would make, without generating it."""
    check_generator_options("dataset", dataset, GENERATORS, options)
    points = options.get(
        "points_per_class", inspect.signature(GENERATORS[dataset]).parameters["points_per_class"].default
    )
    n_test = int(round(test_fraction * 2 * points))
    return 2 * points - n_test, n_test


def _check_size(points_per_class: int, noise: float) -> None:
    if points_per_class < 1:
        raise ValueError(f"points_per_class must be at least 1, got {points_per_class}")
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")


def _shuffle(x, y, rng):
    order = rng.permutation(len(x))
    return x[order], y[order]
