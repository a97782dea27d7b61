"""Trajectory data for learning dynamics: ground truth simulated in float64, observed with noise.

Every system gives the same container, `Trajectories`: noisy observations at irregular
times on a training interval [0, t1] (each trajectory keeps its own times), the noise-free
states there, and the noise-free states on an extrapolation window past t1. Training
windows are drawn from the observations by `sample_windows`, padded to a fixed size with
a mask so that every batch has the same shapes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._options import check_generator_options
from ._saved import SavedAsArrays

if TYPE_CHECKING:  # jaxtyping only annotates: planning imports this module and needs none
    from jaxtyping import Float

    VectorField = Callable[[Float[np.ndarray, "... 2"]], Float[np.ndarray, "... 2"]]

LINEAR_SPIRAL_MATRIX = np.array([[-0.1, -1.0], [1.0, -0.1]])
LINEAR_SPIRAL_START = np.array([0.6, 0.3])
NN_SPIRAL_A = np.array([[-0.1, -0.5], [0.5, -0.1]])
NN_SPIRAL_B = np.array([[0.2, 1.0], [-1.0, 0.2]])
NN_SPIRAL_CENTRE = np.array([-1.0, 0.0])
NN_SPIRAL_START = np.array([0.6, 0.3])
TRUTH_TOLERANCE = 1e-10


@dataclass(frozen=True)
class Trajectories(SavedAsArrays):
    """Noisy observations of a few trajectories of a 2-D system, with the truth beside them.

    All trajectories start at t = 0 from `initial_states`; trajectory i is observed at its
    own times `ts[i]` (sorted, `ts[i, 0] == 0`) on the training interval, and its true state
    is known at `extrapolation_ts[i]`, past the last observation.
    """

    KIND = "trajectories"
    ARRAYS = ("initial_states", "ts", "ys", "ys_true", "extrapolation_ts", "extrapolation_ys_true")
    NOT_THIS = "does not hold trajectories"

    system: str
    settings: dict
    noise: float
    initial_states: Float[np.ndarray, "trajectory 2"]
    ts: Float[np.ndarray, "trajectory time"]
    ys: Float[np.ndarray, "trajectory time 2"]
    ys_true: Float[np.ndarray, "trajectory time 2"]
    extrapolation_ts: Float[np.ndarray, "trajectory later"]
    extrapolation_ys_true: Float[np.ndarray, "trajectory later 2"]

    def true_field(self) -> VectorField:
        """The ground-truth vector field f(y) of this system."""
        return true_field(self.system, **self.settings)


def van_der_pol_field(mu: float) -> VectorField:
    """dx/dt = v, dv/dt = mu (1 - x^2) v - x."""

    def field(y):
        x, v = y[..., 0], y[..., 1]
        return np.stack([v, mu * (1 - x**2) * v - x], axis=-1)

    return field


def linear_field(matrix: Float[np.ndarray, "2 2"]) -> VectorField:
    """dz/dt = matrix z."""
    return lambda y: y @ np.asarray(matrix).T


def nn_spiral_field(y: Float[np.ndarray, "... 2"]) -> Float[np.ndarray, "... 2"]:
    """dx/dt = sigmoid(x.x0) A (x - x0) + sigmoid(-x.x0) B (x + x0): two spirals blended."""
    weight = 1 / (1 + np.exp(-(y @ NN_SPIRAL_CENTRE)))[..., None]
    return weight * ((y - NN_SPIRAL_CENTRE) @ NN_SPIRAL_A.T) + (1 - weight) * (
        (y + NN_SPIRAL_CENTRE) @ NN_SPIRAL_B.T
    )


def rotation_field(rotation: float) -> VectorField:
    """The rotation by `rotation` radians per unit time, dx/dt = rotation * [[0, -1], [1, 0]] x."""
    return linear_field(rotation * np.array([[0.0, -1.0], [1.0, 0.0]]))


def simulate(field: VectorField, y0, ts: Float[np.ndarray, " time"]) -> Float[np.ndarray, "time 2"]:
    """The state at the sorted times `ts` (ts[0] may be past 0), from y0 at t = 0: SciPy DOP853, float64."""
    from scipy.integrate import solve_ivp  # here: planning imports this module and needs no SciPy

    ts = np.asarray(ts, dtype=np.float64)
    solution = solve_ivp(
        lambda t, y: field(y),
        (0.0, float(ts[-1])),
        np.asarray(y0, dtype=np.float64),
        method="DOP853",
        t_eval=ts,
        rtol=TRUTH_TOLERANCE,
        atol=TRUTH_TOLERANCE,
    )
    if not solution.success:
        raise RuntimeError(f"ground-truth solve failed: {solution.message}")
    return solution.y.T


def van_der_pol_period(mu: float) -> float:
    """The period of the Van der Pol limit cycle: mean gap between upward zero crossings of x."""
    field = van_der_pol_field(mu)
    horizon = 60.0 + 20.0 * mu
    ts = np.linspace(0.0, horizon, 40001)
    x = simulate(field, [2.0, 0.0], ts)[:, 0]
    settled = ts > horizon / 2
    upward = np.flatnonzero(settled[1:] & (x[:-1] < 0) & (x[1:] >= 0))
    crossings = ts[upward] - x[upward] * (ts[upward + 1] - ts[upward]) / (x[upward + 1] - x[upward])
    return float(np.mean(np.diff(crossings)))


def _observe(
    system: str,
    settings: dict,
    field: VectorField,
    initial_states,
    ts,
    extrapolation_ts,
    noise: float,
    rng: np.random.Generator,
) -> Trajectories:
    initial_states = np.asarray(initial_states, dtype=np.float64)
    ys_true = np.stack([simulate(field, y0, t) for y0, t in zip(initial_states, ts)])
    later = np.stack([simulate(field, y0, t) for y0, t in zip(initial_states, extrapolation_ts)])
    return Trajectories(
        system=system,
        settings=settings,
        noise=float(noise),
        initial_states=initial_states,
        ts=np.asarray(ts, dtype=np.float64),
        ys=ys_true + noise * rng.standard_normal(ys_true.shape),
        ys_true=ys_true,
        extrapolation_ts=np.asarray(extrapolation_ts, dtype=np.float64),
        extrapolation_ys_true=later,
    )


def _irregular_times(rng, count: int, t1: float, observations: int) -> np.ndarray:
    """t = 0, t = t1 and observations - 2 sorted uniform times between, for each of `count` trajectories."""
    between = np.sort(rng.uniform(0.0, t1, (count, observations - 2)), axis=1)
    return np.concatenate([np.zeros((count, 1)), between, np.full((count, 1), t1)], axis=1)


def _check(observations: int, noise: float, t1: float, extrapolate: float) -> None:
    if observations < 2:
        raise ValueError(f"need at least 2 observations, got {observations}")
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")
    if t1 <= 0 or extrapolate <= 0:
        raise ValueError(f"t1 and the extrapolation window must be positive, got {t1}, {extrapolate}")


def van_der_pol_data(
    *,
    mu: float = 1.0,
    trajectories: int = 12,
    box: float = 2.5,
    t1: float = 10.0,
    observations: int = 120,
    noise: float = 0.01,
    extrapolate_periods: float = 1.0,
    extrapolation_points: int = 100,
    seed: int = 0,
) -> Trajectories:
    """Van der Pol trajectories from `trajectories` starts uniform in [-box, box]^2.

    Each is observed at `observations` irregular times on [0, t1]; the extrapolation window
    is `extrapolate_periods` periods of the limit cycle past t1.
    """
    if mu <= 0 or trajectories < 1 or box <= 0:
        raise ValueError(f"need mu > 0, trajectories >= 1, box > 0; got {mu}, {trajectories}, {box}")
    period = van_der_pol_period(mu)
    _check(observations, noise, t1, extrapolate_periods * period)
    settings = {k: v for k, v in locals().items() if k in inspect.signature(van_der_pol_data).parameters}
    rng = np.random.default_rng(seed)
    starts = rng.uniform(-box, box, (trajectories, 2))
    ts = _irregular_times(rng, trajectories, t1, observations)
    later = np.linspace(t1, t1 + extrapolate_periods * period, extrapolation_points + 1)[1:]
    later = np.tile(later, (trajectories, 1))
    return _observe("vdp", settings, van_der_pol_field(mu), starts, ts, later, noise, rng)


def _one_spiral(system: str, field: VectorField, start: np.ndarray, settings: dict) -> Trajectories:
    """One trajectory of `field` from `start`; `settings` are those of the spiral generators."""
    t1, observations, noise = settings["t1"], settings["observations"], settings["noise"]
    extrapolate, points = settings["extrapolate"], settings["extrapolation_points"]
    _check(observations, noise, t1, extrapolate)
    rng = np.random.default_rng(settings["seed"])
    ts = _irregular_times(rng, 1, t1, observations)
    later = np.linspace(t1, t1 + extrapolate, points + 1)[1:][None]
    return _observe(system, settings, field, start[None], ts, later, noise, rng)


def linear_spiral_data(
    *,
    t1: float = 6.29 * 5,
    observations: int = 200,
    noise: float = 0.01,
    extrapolate: float = 6.29,
    extrapolation_points: int = 100,
    seed: int = 0,
) -> Trajectories:
    """dz/dt = A z, A = [[-0.1, -1], [1, -0.1]], from z0 = (0.6, 0.3), observed at irregular times."""
    return _one_spiral(
        "linear_spiral", linear_field(LINEAR_SPIRAL_MATRIX), LINEAR_SPIRAL_START, dict(locals())
    )


def nn_spiral_data(
    *,
    t1: float = 6.29 * 5,
    observations: int = 200,
    noise: float = 0.01,
    extrapolate: float = 6.29,
    extrapolation_points: int = 100,
    seed: int = 0,
) -> Trajectories:
    """The two-layer spiral field (`nn_spiral_field`) from (0.6, 0.3), observed at irregular times."""
    return _one_spiral("nn_spiral", nn_spiral_field, NN_SPIRAL_START, dict(locals()))


def regression_ab_data(
    *,
    pairs: int = 8,
    rotation: float = 1.0,
    noise: float = 0.01,
    extrapolate: float = 1.0,
    extrapolation_points: int = 20,
    seed: int = 0,
) -> Trajectories:
    """Start points A ~ N(0, I) and targets B = A rotated by `rotation` radians, observed at t = 1.

    Each pair is a trajectory observed twice, at t = 0 (A) and t = 1 (B). The rotation field
    is one field that carries every A to its B; the extrapolation window continues it past t = 1.
    """
    if pairs < 1:
        raise ValueError(f"need at least one pair, got {pairs}")
    _check(2, noise, 1.0, extrapolate)
    settings = dict(locals())
    rng = np.random.default_rng(seed)
    starts = rng.standard_normal((pairs, 2))
    ts = np.tile([0.0, 1.0], (pairs, 1))
    later = np.tile(np.linspace(1.0, 1.0 + extrapolate, extrapolation_points + 1)[1:], (pairs, 1))
    return _observe("regression_ab", settings, rotation_field(rotation), starts, ts, later, noise, rng)


DYNAMICS_GENERATORS: dict[str, Callable[..., Trajectories]] = {
    "vdp": van_der_pol_data,
    "linear_spiral": linear_spiral_data,
    "nn_spiral": nn_spiral_data,
    "regression_ab": regression_ab_data,
}


def make_trajectories(system: str, **settings) -> Trajectories:
    """The data of `system` (a key of DYNAMICS_GENERATORS); unknown options are a ValueError naming them."""
    check_trajectory_options(system, {k: v for k, v in settings.items() if k != "seed"})
    return DYNAMICS_GENERATORS[system](**settings)


def check_trajectory_options(system: str, options: dict) -> None:
    """A ValueError naming the system or any option its generator does not take."""
    check_generator_options("system", system, DYNAMICS_GENERATORS, options)


def true_field(system: str, **settings) -> VectorField:
    """The ground-truth field of `system` with the generator `settings` its data was made with."""
    if system == "vdp":
        return van_der_pol_field(settings.get("mu", 1.0))
    if system == "linear_spiral":
        return linear_field(LINEAR_SPIRAL_MATRIX)
    if system == "nn_spiral":
        return nn_spiral_field
    if system == "regression_ab":
        return rotation_field(settings.get("rotation", 1.0))
    raise ValueError(f"unknown system {system!r}; choose one of {', '.join(DYNAMICS_GENERATORS)}")


@dataclass(frozen=True)
class Windows:
    """A batch of observation windows padded to `max_points`; `mask` is 1 on real observations.

    Padding repeats a window's last time and observation, so `ts` stays sorted.
    """

    ts: Float[np.ndarray, "batch point"]
    ys: Float[np.ndarray, "batch point 2"]
    mask: Float[np.ndarray, "batch point"]


def sample_windows(
    data: Trajectories,
    rng: np.random.Generator,
    *,
    batch: int,
    min_length: float,
    max_length: float,
    max_points: int,
) -> Windows:
    """`batch` random windows of the observations.

    Each picks a trajectory (all of them, shuffled, when `batch` equals their number), a
    length uniform in [min_length, max_length] (cut to the trajectory's span) and a start
    uniform over the times where it fits; then it takes at most `max_points` of the
    observations inside, at random, sorted. A window always holds at least two observations.
    """
    if not 0 < min_length <= max_length:
        raise ValueError(f"need 0 < min_length <= max_length, got {min_length}, {max_length}")
    if max_points < 2 or batch < 1:
        raise ValueError(f"need max_points >= 2 and batch >= 1, got {max_points}, {batch}")
    count = len(data.ts)
    chosen = rng.choice(count, batch, replace=batch > count)
    ts = np.empty((batch, max_points))
    ys = np.empty((batch, max_points, data.ys.shape[-1]))
    mask = np.zeros((batch, max_points))
    for row, trajectory in enumerate(chosen):
        times = data.ts[trajectory]
        span = times[-1] - times[0]
        length = min(rng.uniform(min_length, max_length), span)
        start = rng.uniform(times[0], times[-1] - length)
        inside = np.flatnonzero((times >= start) & (times <= start + length))
        if len(inside) < 2:
            nearest = int(np.clip(np.searchsorted(times, start), 0, len(times) - 2))
            inside = np.array([nearest, nearest + 1])
        if len(inside) > max_points:
            inside = np.sort(rng.choice(inside, max_points, replace=False))
        taken = len(inside)
        ts[row, :taken] = times[inside]
        ys[row, :taken] = data.ys[trajectory, inside]
        ts[row, taken:] = ts[row, taken - 1]
        ys[row, taken:] = ys[row, taken - 1]
        mask[row, :taken] = 1.0
    return Windows(ts=ts, ys=ys, mask=mask)
