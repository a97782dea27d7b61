"""Explicit Runge-Kutta solvers in NumPy: Euler, RK4 and adaptive Dopri5, counting evaluations."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

VectorField = Callable[[float, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Tableau:
    """Butcher tableau of an explicit method; `b_error` (b - b_embedded) when it has an estimate."""

    c: np.ndarray
    a: tuple[np.ndarray, ...]
    """a[s] holds the coefficients of stage s on stages 0 .. s-1 (a[0] is empty)."""
    b: np.ndarray
    b_error: np.ndarray | None
    order: int
    error_order: int | None = None
    """Order of the embedded method, which sets the step-size exponent 1 / (error_order + 1)."""

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def fsal(self) -> bool:
        """First same as last: the last stage is f at the new state, reused as the next first."""
        return bool(self.c[-1] == 1.0 and np.array_equal(self.a[-1], self.b[:-1]) and self.b[-1] == 0.0)


def _lower(*rows) -> tuple[np.ndarray, ...]:
    return (np.zeros(0),) + tuple(np.array(row, dtype=float) for row in rows)


_DOPRI5_B = np.array([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0])
_DOPRI5_B_EMBEDDED = np.array([5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40])

TABLEAUS: dict[str, Tableau] = {
    "euler": Tableau(c=np.array([0.0]), a=_lower(), b=np.array([1.0]), b_error=None, order=1),
    "rk4": Tableau(
        c=np.array([0.0, 0.5, 0.5, 1.0]),
        a=_lower([0.5], [0.0, 0.5], [0.0, 0.0, 1.0]),
        b=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=None,
        order=4,
    ),
    "dopri5": Tableau(
        c=np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]),
        a=_lower(
            [1 / 5],
            [3 / 40, 9 / 40],
            [44 / 45, -56 / 15, 32 / 9],
            [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
            [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
            _DOPRI5_B[:6],
        ),
        b=_DOPRI5_B,
        b_error=_DOPRI5_B - _DOPRI5_B_EMBEDDED,
        order=5,
        error_order=4,
    ),
}
"""The explicit methods by name (Dormand & Prince 1980 for dopri5)."""


@dataclass(frozen=True)
class Step:
    """One Runge-Kutta step: the new state, its error estimate, and every stage."""

    y: np.ndarray
    error: np.ndarray | None
    stage_states: list[np.ndarray]
    """The state at which each stage evaluates f: y + h sum_j a[s, j] k_j."""
    stage_slopes: list[np.ndarray]
    """k_s = f(t + c_s h, stage_states[s])."""


def _combine(coefficients: np.ndarray, slopes: list[np.ndarray]) -> np.ndarray:
    """sum_j coefficients[j] * slopes[j], skipping zero coefficients."""
    return sum(c * k for c, k in zip(coefficients, slopes, strict=True) if c)


def rk_step(
    f: VectorField, tableau: Tableau, t: float, y: np.ndarray, h: float, k_first: np.ndarray | None = None
) -> Step:
    """One explicit step of size `h` (negative to go backward); `k_first` reuses f(t, y)."""
    states, slopes = [y], [f(t, y) if k_first is None else k_first]
    for s in range(1, tableau.stages):
        state = y + h * _combine(tableau.a[s], slopes)
        states.append(state)
        slopes.append(f(t + tableau.c[s] * h, state))
    y_new = y + h * _combine(tableau.b, slopes)
    error = None
    if tableau.b_error is not None:
        error = h * _combine(tableau.b_error, slopes)
    return Step(y=y_new, error=error, stage_states=states, stage_slopes=slopes)


class CountedField:
    """f wrapped so that each evaluation adds one to `count`."""

    def __init__(self, f: VectorField):
        self.f = f
        self.count = 0

    def __call__(self, t: float, y: np.ndarray) -> np.ndarray:
        self.count += 1
        return self.f(t, y)


def fixed_step_counts(ts: np.ndarray, steps: int) -> list[int]:
    """Steps per interval of `ts` for `steps` equal steps over [ts[0], ts[-1]], as `pyode.solve` takes.

    Every save time must lie on that grid.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    dt = (ts[-1] - ts[0]) / steps
    exact = np.diff(ts) / dt
    counts = np.rint(exact).astype(int)
    if np.any(np.abs(exact - counts) > 1e-8 * max(1.0, steps)) or np.any(counts < 1):
        raise ValueError(f"save times {ts.tolist()} do not lie on the grid of {steps} equal steps")
    return counts.tolist()


def steps_per_interval(ts: np.ndarray, steps: int | None) -> list[int | None]:
    """`fixed_step_counts` for fixed steps; None on every interval for an adaptive solve."""
    return fixed_step_counts(ts, steps) if steps is not None else [None] * (len(ts) - 1)


def error_ratio(error: np.ndarray, y: np.ndarray, y_new: np.ndarray, rtol: float, atol: float) -> float:
    """RMS of the error estimate over atol + rtol * max(|y|, |y_new|); a step passes at <= 1."""
    scale = atol + rtol * np.maximum(np.abs(y), np.abs(y_new))
    return float(np.sqrt(np.mean((error / scale) ** 2)))


class Integrator:
    """Advances a state across intervals with one method, carrying the step size and f's last value.

    Fixed steps when `rtol`/`atol` are None (the caller says how many per interval),
    otherwise adaptive with the embedded error estimate (Hairer, Norsett & Wanner, II.4).
    `nfe` counts evaluations of f; `num_steps` and `num_rejected_steps` count steps.
    """

    SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0

    def __init__(
        self,
        f: VectorField,
        method: str,
        *,
        rtol: float | None = None,
        atol: float | None = None,
        max_steps: int = 100_000,
        record_steps: bool = False,
    ):
        check_method(method, rtol=rtol, atol=atol)
        self.f = CountedField(f)
        self.tableau = TABLEAUS[method]
        self.rtol, self.atol = rtol, atol
        self.max_steps = max_steps
        self.num_steps = 0
        self.num_rejected_steps = 0
        self.record_steps = record_steps
        self.taken: list[tuple[float, np.ndarray]] = []
        """With `record_steps`: (t, y) at the end of every accepted step, in order (the caller clears it)."""
        self._step_size: float | None = None
        self._last: tuple[float, np.ndarray, np.ndarray] | None = None

    @property
    def nfe(self) -> int:
        return self.f.count

    @property
    def adaptive(self) -> bool:
        return self.rtol is not None

    def _cached_slope(self, t: float, y: np.ndarray) -> np.ndarray | None:
        """f(t, y) if the last step ended there (first same as last), else None."""
        if self._last is not None and self._last[0] == t and np.array_equal(self._last[1], y):
            return self._last[2]
        return None

    def advance(self, t0: float, t1: float, y: np.ndarray, num_steps: int | None = None) -> np.ndarray:
        """The state at t1 starting from y at t0 (t1 < t0 integrates backward)."""
        k_first = self._cached_slope(t0, y)
        if self.adaptive:
            y, k_first = self._advance_adaptive(t0, t1, y, self.f(t0, y) if k_first is None else k_first)
        else:
            h = (t1 - t0) / num_steps
            for m in range(num_steps):
                step = rk_step(self.f, self.tableau, t0 + m * h, y, h, k_first)
                self.num_steps += 1
                y = step.y
                if self.record_steps:
                    self.taken.append((t1 if m == num_steps - 1 else t0 + (m + 1) * h, y))
                k_first = step.stage_slopes[-1] if self.tableau.fsal else None
        self._last = None if k_first is None else (t1, y, k_first)
        return y

    def solve(self, y0: np.ndarray, ts: np.ndarray, counts: list[int | None]) -> np.ndarray:
        """States at every ts from y0 at ts[0], with `counts[i]` fixed steps on interval i."""
        ys = [y0]
        for t0, t1, count in zip(ts[:-1], ts[1:], counts, strict=True):
            ys.append(self.advance(t0, t1, ys[-1], count))
        return np.stack(ys)

    def _initial_step(self, t0: float, y0: np.ndarray, f0: np.ndarray, span: float) -> float:
        """Hairer, Norsett & Wanner's starting step (one extra evaluation of f)."""
        scale = self.atol + self.rtol * np.abs(y0)

        def norm(x):
            return float(np.sqrt(np.mean((x / scale) ** 2)))

        d0, d1 = norm(y0), norm(f0)
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        h0 = min(h0, abs(span))
        direction = np.sign(span)
        f1 = self.f(t0 + direction * h0, y0 + direction * h0 * f0)
        d2 = norm(f1 - f0) / h0
        exponent = 1.0 / (self.tableau.error_order + 1)
        h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** exponent
        return float(direction * min(100 * h0, h1))

    def _advance_adaptive(self, t0, t1, y, k_first):
        span = t1 - t0
        if self._step_size is None or np.sign(self._step_size) != np.sign(span):
            self._step_size = self._initial_step(t0, y, k_first, span)
        h, t = self._step_size, t0
        exponent = 1.0 / (self.tableau.error_order + 1)
        while (t1 - t) * np.sign(span) > 0:
            if self.num_steps + self.num_rejected_steps >= self.max_steps:
                raise RuntimeError(f"more than {self.max_steps} steps; loosen rtol/atol or raise max_steps")
            last = (t + h - t1) * np.sign(span) >= 0
            h_step = t1 - t if last else h
            step = rk_step(self.f, self.tableau, t, y, h_step, k_first)
            ratio = error_ratio(step.error, y, step.y, self.rtol, self.atol)
            accepted = ratio <= 1.0
            factor = self.MAX_FACTOR if ratio == 0.0 else self.SAFETY * ratio**-exponent
            factor = min(self.MAX_FACTOR if accepted else 1.0, max(self.MIN_FACTOR, factor))
            if accepted:
                self.num_steps += 1
                t = t1 if last else t + h_step
                y, k_first = step.y, step.stage_slopes[-1]
                if self.record_steps:
                    self.taken.append((t, y))
                h = h_step * factor if not last else np.sign(span) * max(abs(h), abs(h_step * factor))
            else:
                self.num_rejected_steps += 1
                h = h_step * factor
        self._step_size = h
        return y, k_first


def check_method(method: str, *, rtol: float | None = None, atol: float | None = None) -> None:
    """Raise a clear ValueError for an unknown method or a tolerance it cannot use."""
    if method not in TABLEAUS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(TABLEAUS)}")
    if (rtol is None) != (atol is None):
        raise ValueError("an adaptive solve needs both rtol and atol")
    if rtol is not None and TABLEAUS[method].b_error is None:
        raise ValueError(f"method {method!r} has no error estimate; give steps instead of rtol/atol")


@dataclass(frozen=True)
class ODESolution:
    """States at the save times and what the solve cost."""

    ts: np.ndarray
    ys: np.ndarray
    """Shape (time, ...): ys[i] is the state at ts[i]."""
    nfe: int
    num_steps: int
    num_rejected_steps: int


def odeint(
    f: VectorField,
    y0: np.ndarray,
    ts: np.ndarray,
    *,
    method: str = "dopri5",
    rtol: float | None = None,
    atol: float | None = None,
    steps: int | None = None,
    max_steps: int = 100_000,
) -> ODESolution:
    """Solve dy/dt = f(t, y) from ts[0], saving at every ts (increasing or decreasing).

    Adaptive with `rtol` and `atol` (dopri5), or `steps` equal steps over [ts[0], ts[-1]]
    (any method), with every save time on that grid as in `pyode.solve`.
    """
    ts, y0 = np.asarray(ts, dtype=float), np.asarray(y0)
    check_span(ts, rtol=rtol, steps=steps)
    integrator = Integrator(f, method, rtol=rtol, atol=atol, max_steps=max_steps)
    ys = integrator.solve(y0, ts, steps_per_interval(ts, steps))
    return ODESolution(
        ts=ts,
        ys=ys,
        nfe=integrator.nfe,
        num_steps=integrator.num_steps,
        num_rejected_steps=integrator.num_rejected_steps,
    )


def check_span(ts: np.ndarray, *, rtol: float | None, steps: int | None) -> None:
    """Raise a ValueError unless ts is strictly monotonic and exactly one of rtol / steps is given."""
    if ts.ndim != 1 or len(ts) < 2:
        raise ValueError("ts must be a vector of at least two save times")
    gaps = np.diff(ts)
    if not (np.all(gaps > 0) or np.all(gaps < 0)):
        raise ValueError("ts must be strictly increasing or strictly decreasing")
    if (rtol is None) == (steps is None):
        raise ValueError("give either tolerances (rtol, atol) or a number of fixed steps (steps)")
