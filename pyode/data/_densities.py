"""Densities in the plane for continuous normalising flows: the toy data of FFJORD (Grathwohl et al. 2019).

The four generators draw from the shapes of FFJORD's `lib/toy_data.py` with a seeded NumPy
generator: eight Gaussians on a circle, two moons, a checkerboard and a five-armed pinwheel.
Two of them have a density in closed form (`true_log_density`), so that a learnt model's
test negative log-likelihood can be set beside the best any model can reach: the data's
own entropy, estimated on the same test points.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._saved import SavedAsArrays

if TYPE_CHECKING:  # jaxtyping only annotates: planning imports this module and needs none
    from jaxtyping import Float

EIGHT_GAUSSIANS_RADIUS = 4.0
EIGHT_GAUSSIANS_STD = 0.5
EIGHT_GAUSSIANS_SHRINK = 1.414
"""FFJORD's eight Gaussians: centres on a circle of radius 4, standard deviation 0.5, all divided by 1.414."""


def eight_gaussians(n: int, rng: np.random.Generator) -> Float[np.ndarray, "n 2"]:
    """An equal mixture of eight Gaussians centred at the eighth roots of unity times 4, shrunk by 1.414."""
    centres = _eight_centres()
    points = centres[rng.integers(0, 8, n)] + EIGHT_GAUSSIANS_STD * rng.standard_normal((n, 2))
    return points / EIGHT_GAUSSIANS_SHRINK


def _eight_centres() -> np.ndarray:
    angles = np.arange(8) * np.pi / 4
    return EIGHT_GAUSSIANS_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def two_moons(n: int, rng: np.random.Generator, *, noise: float = 0.1) -> Float[np.ndarray, "n 2"]:
    """Two interleaving half circles (scikit-learn's moons, angle drawn uniformly), noise 0.1, scaled by 2
    and shifted by (-1, -0.2) as in FFJORD."""
    upper = rng.random(n) < 0.5
    angle = rng.uniform(0.0, np.pi, n)
    outer = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    inner = np.stack([1.0 - np.cos(angle), 0.5 - np.sin(angle)], axis=1)
    points = np.where(upper[:, None], outer, inner) + noise * rng.standard_normal((n, 2))
    return 2.0 * points + np.array([-1.0, -0.2])


def checkerboard(n: int, rng: np.random.Generator) -> Float[np.ndarray, "n 2"]:
    """Uniform on the eight black squares (side 2) of a 4 x 4 checkerboard covering [-4, 4]^2."""
    x1 = rng.uniform(-2.0, 2.0, n)
    x2 = rng.uniform(0.0, 1.0, n) - 2.0 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return 2.0 * np.stack([x1, x2], axis=1)


def pinwheel(
    n: int,
    rng: np.random.Generator,
    *,
    arms: int = 5,
    radial_std: float = 0.3,
    tangential_std: float = 0.1,
    rate: float = 0.25,
) -> Float[np.ndarray, "n 2"]:
    """Five arms: points at radius about 1 (radial and tangential spread), each turned by its arm's angle
    plus `rate` times the exponential of its radius, then scaled by 2 (FFJORD's pinwheel)."""
    features = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    arm = rng.integers(0, arms, n)
    angle = 2 * np.pi * arm / arms + rate * np.exp(features[:, 0])
    cos, sin = np.cos(angle), np.sin(angle)
    turned = np.stack(
        [features[:, 0] * cos + features[:, 1] * sin, -features[:, 0] * sin + features[:, 1] * cos]
    )
    return 2.0 * turned.T


DENSITIES: dict[str, Callable[..., np.ndarray]] = {
    "8gaussians": eight_gaussians,
    "moons": two_moons,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
}
"""The toy densities by FFJORD's names: f(n, rng, **options) -> points (n, 2)."""


def _eight_gaussians_log_density(x: np.ndarray) -> np.ndarray:
    from scipy.special import logsumexp  # here: planning imports this module and needs no SciPy

    std = EIGHT_GAUSSIANS_STD / EIGHT_GAUSSIANS_SHRINK
    centres = _eight_centres() / EIGHT_GAUSSIANS_SHRINK
    squared = np.sum((x[:, None, :] - centres[None]) ** 2, axis=-1)
    return logsumexp(-squared / (2 * std**2), axis=1) - np.log(8 * 2 * np.pi * std**2)


def _checkerboard_log_density(x: np.ndarray) -> np.ndarray:
    inside = np.all(np.abs(x) < 4.0, axis=1)
    black = (np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)) % 2 == 0
    return np.where(inside & black, -np.log(32.0), -np.inf)


TRUE_LOG_DENSITIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "8gaussians": _eight_gaussians_log_density,
    "checkerboard": _checkerboard_log_density,
}
"""Closed-form log-densities, for the densities whose default options have one."""


def true_log_density(name: str, x: Float[np.ndarray, "n 2"], **options) -> Float[np.ndarray, " n"] | None:
    """log p(x) of density `name` at its default options, or None where there is no closed form."""
    if name not in TRUE_LOG_DENSITIES or options:
        return None
    return TRUE_LOG_DENSITIES[name](np.asarray(x, dtype=np.float64))


def check_density_options(name: str, options: dict) -> None:
    """A ValueError naming the problem if density `name` does not take `options`."""
    if name not in DENSITIES:
        raise ValueError(f"unknown density {name!r}; choose one of {', '.join(DENSITIES)}")
    accepted = set(inspect.signature(DENSITIES[name]).parameters) - {"n", "rng"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"density {name!r} takes no option {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(accepted)) or 'none'}"
        )


@dataclass(frozen=True)
class DensitySamples(SavedAsArrays):
    """Training and test points drawn from one density (float32, as the flows train)."""

    KIND = "density_samples"
    ARRAYS = ("x_train", "x_test")
    NOT_THIS = "does not hold samples of a density"

    density: str
    options: dict
    x_train: Float[np.ndarray, "n 2"]
    x_test: Float[np.ndarray, "m 2"]

    def true_log_density(self, x: np.ndarray) -> np.ndarray | None:
        """The density's log p(x) where it has a closed form, else None."""
        return true_log_density(self.density, x, **self.options)


def sample_density(
    name: str, *, train_points: int = 20000, test_points: int = 5000, seed: int = 0, **options
) -> DensitySamples:
    """`train_points` and `test_points` independent draws from density `name` (seeded)."""
    check_density_options(name, options)
    if train_points < 1 or test_points < 1:
        raise ValueError(
            f"need at least one training and one test point, got {train_points} and {test_points}"
        )
    rng = np.random.default_rng(seed)
    points = DENSITIES[name](train_points + test_points, rng, **options).astype(np.float32)
    return DensitySamples(name, dict(options), points[:train_points], points[train_points:])
