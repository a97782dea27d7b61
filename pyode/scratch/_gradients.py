"""Gradients of a loss on a solved trajectory: the continuous adjoint and backprop through the steps.

The derivation, and which formula each line implements, is in docs/adjoint.md.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._field import ScratchField
from ._solvers import (
    TABLEAUS,
    CountedField,
    Integrator,
    Step,
    Tableau,
    check_method,
    check_span,
    fixed_step_counts,
    rk_step,
    steps_per_interval,
)

Loss = Callable[[np.ndarray], tuple[float, np.ndarray]]
"""ys (time, ..., dim) -> (L, dL/dys)."""


def linear_loss(cotangent: np.ndarray) -> Loss:
    """L(ys) = sum(cotangent * ys): the cross-validation loss, whose dL/dys is `cotangent`."""
    cotangent = np.asarray(cotangent)
    return lambda ys: (float(np.sum(cotangent * ys)), cotangent)


@dataclass(frozen=True)
class Gradients:
    """A loss on a solved trajectory, its gradients, and what they cost."""

    ys: np.ndarray
    loss: float
    grad_y0: np.ndarray
    grad_theta: np.ndarray
    """dL/dtheta in the order of the field's `flat_parameters` (`unflatten_weights` for an MLP's layers)."""
    grad_ts: np.ndarray
    nfe_forward: int
    nfe_backward: int
    """Evaluations of the backward pass: augmented-field (f and its VJP) or VJP-only calls."""


RESTARTS = ("save_times", "steps")


def adjoint_gradients(
    field: ScratchField,
    y0: np.ndarray,
    ts: np.ndarray,
    loss: Loss,
    *,
    method: str = "dopri5",
    rtol: float | None = None,
    atol: float | None = None,
    steps: int | None = None,
    max_steps: int = 100_000,
    restart: str = "save_times",
) -> Gradients:
    """dL/dy0, dL/dtheta and dL/dts by the continuous adjoint (Chen et al. 2018, appendix B).

    Solve forward; then solve the augmented state [z, a_z, a_theta, a_t] backward
    (`augmented_dynamics`) interval by interval, adding the direct dL/dz(t_i) to a_z and
    subtracting dL/dt_i = dL/dz(t_i) . f(t_i, z(t_i)) from a_t at each save time.
    Adaptive with rtol/atol, or fixed `steps`. `restart` says where z is taken from the
    forward solution again: at the save times (Chen et al.), or at the end of every forward
    step (`steps`, as SciMLSensitivity's BacksolveAdjoint(checkpointing=true) with a
    checkpoint per step). Between restarts z is re-integrated backward, which is unstable
    where the forward flow contracts fast (a stiff problem): restarting every step keeps
    each backward stretch one stable forward step long.
    """
    if restart not in RESTARTS:
        raise ValueError(f"unknown restart {restart!r}; choose one of {', '.join(RESTARTS)}")
    ts, y0 = np.asarray(ts, dtype=float), np.asarray(y0)
    check_span(ts, rtol=rtol, steps=steps)
    counts = steps_per_interval(ts, steps)
    forward = Integrator(
        field, method, rtol=rtol, atol=atol, max_steps=max_steps, record_steps=restart == "steps"
    )
    ys, knots = [y0], []
    for t0, t1, count in zip(ts[:-1], ts[1:], counts, strict=True):
        forward.taken.clear()
        ys.append(forward.advance(t0, t1, ys[-1], count))
        knots.append([(t0, ys[-2])] + (forward.taken if restart == "steps" else [(t1, ys[-1])]))
    ys = np.stack(ys)
    value, ys_bar = loss(ys)

    size, num_parameters = y0.size, field.num_parameters
    backward = Integrator(
        augmented_dynamics(field, y0.shape), method, rtol=rtol, atol=atol, max_steps=max_steps
    )
    direct_field = CountedField(field)
    grad_ts = np.zeros(len(ts))
    a_z, a_theta, a_t = np.zeros_like(y0), np.zeros(num_parameters, dtype=y0.dtype), 0.0
    for i in range(len(ts) - 1, 0, -1):
        a_z = a_z + ys_bar[i]
        grad_ts[i] = float(np.sum(ys_bar[i] * direct_field(ts[i], ys[i])))
        a_t -= grad_ts[i]
        stretches = list(zip(knots[i - 1][:-1], knots[i - 1][1:], strict=True))
        for (t_left, _), (t_right, z_right) in reversed(stretches):
            state = np.concatenate([z_right.ravel(), a_z.ravel(), a_theta, [a_t]])
            state = backward.advance(t_right, t_left, state, 1 if restart == "steps" else counts[i - 1])
            a_z = state[size : 2 * size].reshape(y0.shape)
            a_theta = state[2 * size : 2 * size + num_parameters]
            a_t = float(state[-1])
    grad_ts[0] = a_t
    return Gradients(
        ys=ys,
        loss=value,
        grad_y0=a_z + ys_bar[0],
        grad_theta=a_theta,
        grad_ts=grad_ts,
        nfe_forward=forward.nfe,
        nfe_backward=backward.nfe + direct_field.count,
    )


def augmented_dynamics(field: ScratchField, state_shape: tuple[int, ...]):
    """d/dt [z, a_z, a_theta, a_t] = [f, -a_z^T df/dz, -a_z^T df/dtheta, -a_z^T df/dt], flattened."""
    size = int(np.prod(state_shape))

    def dynamics(t: float, state: np.ndarray) -> np.ndarray:
        z = state[:size].reshape(state_shape)
        a_z = state[size : 2 * size].reshape(state_shape)
        products = field.vjp(t, z, a_z)
        return np.concatenate([products.value.ravel(), -products.y.ravel(), -products.theta, [-products.t]])

    return dynamics


def backprop_gradients(
    field: ScratchField,
    y0: np.ndarray,
    ts: np.ndarray,
    loss: Loss,
    *,
    method: str = "rk4",
    steps: int,
) -> Gradients:
    """dL/dy0, dL/dtheta and dL/dts by reverse accumulation through `steps` fixed steps.

    Discretise-then-optimise: the exact gradient of the discrete solution (`reverse_step`
    on every stored step), which is what Diffrax's `checkpoint` adjoint computes.
    """
    ts, y0 = np.asarray(ts, dtype=float), np.asarray(y0)
    check_span(ts, rtol=None, steps=steps)
    check_method(method)
    tableau = TABLEAUS[method]
    counts = fixed_step_counts(ts, steps)
    counted_field = CountedField(field)

    intervals: list[list[Step]] = []
    y, ys, k_first = y0, [y0], None
    for t0, t1, count in zip(ts[:-1], ts[1:], counts, strict=True):
        h = (t1 - t0) / count
        taken = []
        for m in range(count):
            step = rk_step(counted_field, tableau, t0 + m * h, y, h, k_first)
            taken.append(step)
            y = step.y
            k_first = step.stage_slopes[-1] if tableau.fsal else None
        intervals.append(taken)
        ys.append(y)
    ys = np.stack(ys)
    value, ys_bar = loss(ys)

    grad_ts = np.zeros(len(ts))
    grad_theta = np.zeros(field.num_parameters, dtype=y0.dtype)
    nfe_backward = 0
    y_bar = ys_bar[-1]
    for i in range(len(ts) - 2, -1, -1):
        h = (ts[i + 1] - ts[i]) / counts[i]
        grad_start, grad_h = 0.0, 0.0
        for m in range(counts[i] - 1, -1, -1):
            step_bar = reverse_step(field, tableau, ts[i] + m * h, h, intervals[i][m], y_bar)
            y_bar = step_bar.y
            grad_theta += step_bar.theta
            grad_start += step_bar.t
            grad_h += step_bar.h + m * step_bar.t
            nfe_backward += step_bar.nfe
        grad_ts[i] += grad_start - grad_h / counts[i]
        grad_ts[i + 1] += grad_h / counts[i]
        y_bar = y_bar + ys_bar[i]
    return Gradients(
        ys=ys,
        loss=value,
        grad_y0=y_bar,
        grad_theta=grad_theta,
        grad_ts=grad_ts,
        nfe_forward=counted_field.count,
        nfe_backward=nfe_backward,
    )


@dataclass(frozen=True)
class StepCotangents:
    """Cotangents of one step's inputs: state, parameters, start time, step size; VJPs spent."""

    y: np.ndarray
    theta: np.ndarray
    t: float
    h: float
    nfe: int


def reverse_step(
    field: ScratchField, tableau: Tableau, t: float, h: float, step: Step, y_new_bar: np.ndarray
) -> StepCotangents:
    """Pull the cotangent of y_new = y + h sum_s b_s k_s back through the stages, last first.

    k_s = f(t + c_s h, y + h sum_j a_sj k_j), so each stage's cotangent k_bar_s goes
    through one VJP of f and feeds y, theta, t, h and the earlier stages' k_bar_j.
    """
    slopes, states = step.stage_slopes, step.stage_states
    slopes_bar = [h * b * y_new_bar if b else None for b in tableau.b]
    y_bar = y_new_bar.copy()
    theta_bar = np.zeros(field.num_parameters, dtype=y_new_bar.dtype)
    h_bar = sum(b * float(np.sum(y_new_bar * k)) for b, k in zip(tableau.b, slopes, strict=True) if b)
    t_bar, nfe = 0.0, 0
    for s in range(tableau.stages - 1, -1, -1):
        if slopes_bar[s] is None:
            continue
        products = field.vjp(t + tableau.c[s] * h, states[s], slopes_bar[s])
        nfe += 1
        theta_bar += products.theta
        t_bar += products.t
        h_bar += tableau.c[s] * products.t
        y_bar += products.y
        for j, a in enumerate(tableau.a[s]):
            if a:
                slopes_bar[j] = h * a * products.y + (0.0 if slopes_bar[j] is None else slopes_bar[j])
                h_bar += a * float(np.sum(products.y * slopes[j]))
    return StepCotangents(y=y_bar, theta=theta_bar, t=t_bar, h=h_bar, nfe=nfe)
