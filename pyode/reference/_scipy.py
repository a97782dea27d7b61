"""SciPy: `solve_ivp` at tight tolerance, gradients from the forward sensitivity equations.

With S = dy/dy0 and S_theta = dy/dtheta, the augmented system is
dy/dt = f, dS/dt = J_y S, dS_theta/dt = J_y S_theta + J_theta (S(0) = I, S_theta(0) = 0),
and the loss gradients are sums of the cotangent against S and S_theta at the save times.
The Jacobians of the field are written out by hand below (no autodiff); a `cnf` case's trace row
uses `pyode.scratch`'s hand-written second derivatives.

Beside the backend: SciPy's library for the benchmarks' work-precision study (`solve_ivp` on the NumPy
field of `scratch_field`), the study's reference solution (`save_time_solution`) and the states on
the Van der Pol limit cycle that its `vdp` problem starts from (`vdp_cycle`).
"""

import warnings
from collections.abc import Callable
from dataclasses import replace
from importlib.metadata import version

import numpy as np

from ._base import AbstractBackend, Result
from ._case import Case
from ._library import AbstractLibrary, PrecisionRunner
from ._scratch import numpy_field

SCIPY_SOLVERS = ("RK23", "RK45", "DOP853")
"""The adaptive explicit methods of `solve_ivp` that the work-precision study runs."""

REFERENCE_TOLERANCE = 1e-12
"""The loosest rtol and atol this backend solves at, whatever the case asks: it is the reference."""


def _sigma(name: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An activation and its derivative at z."""
    if name == "tanh":
        value = np.tanh(z)
        return value, 1 - value**2
    if name == "softplus":
        return np.logaddexp(z, 0.0), 0.5 * (1 + np.tanh(z / 2))
    if name == "elu":
        return np.where(z > 0, z, np.expm1(np.minimum(z, 0))), np.where(z > 0, 1.0, np.exp(np.minimum(z, 0)))
    if name == "relu":
        return np.maximum(z, 0), (z > 0).astype(z.dtype)
    if name == "silu":
        sigmoid = 0.5 * (1 + np.tanh(z / 2))
        return z * sigmoid, sigmoid * (1 + z * (1 - sigmoid))
    raise ValueError(f"unknown activation {name!r}")


def field_and_jacobians(case: Case, t: float, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """f (batch, dim), J_y (batch, dim, dim) and J_theta (batch, dim, P), P in `case.params` order."""
    batch, dim = y.shape
    if case.field["kind"] == "vdp":
        mu = case.params["theta"][0]
        x, v = y[:, 0], y[:, 1]
        f = np.stack([v, mu * (1 - x**2) * v - x], axis=-1)
        j_y = np.zeros((batch, 2, 2))
        j_y[:, 0, 1] = 1
        j_y[:, 1, 0] = -2 * mu * x * v - 1
        j_y[:, 1, 1] = mu * (1 - x**2)
        j_theta = np.zeros((batch, 2, 1))
        j_theta[:, 1, 0] = (1 - x**2) * v
        return f, j_y, j_theta
    if case.field["kind"] == "cnf":
        return _cnf_field_and_jacobians(case, t, y)
    weights = case.mlp_weights()
    out = weights[-1][0].shape[0]
    h = np.concatenate([y, np.full((batch, 1), t)], axis=1) if case.field["time_input"] else y
    inputs, slopes = [], []
    for k, (w, b) in enumerate(weights):
        inputs.append(h)
        z = h @ w.T + b
        if k < len(weights) - 1:
            h, slope = _sigma(case.field["activation"], z)
            slopes.append(slope)
        else:
            h = z
    j_mlp = np.empty((batch, out, dim))
    grads = {name: np.empty((batch, out) + value.shape) for name, value in case.params.items()}
    for i in range(out):
        g = np.zeros((batch, out))
        g[:, i] = 1
        for k in reversed(range(len(weights))):
            grads[f"weight_{k}"][:, i] = g[:, :, None] * inputs[k][:, None, :]
            grads[f"bias_{k}"][:, i] = g
            g = g @ weights[k][0]
            if k > 0:
                g = g * slopes[k - 1]
        j_mlp[:, i] = g[:, :dim]
    j_theta = np.concatenate([grads[name].reshape(batch, out, -1) for name in case.params], axis=2)
    if case.field["kind"] == "mlp":
        return h, j_mlp, j_theta
    # sonode: f = (v, MLP(y)), so J_y = [[0, I], [J_MLP]] and J_theta = [[0], [J_MLP,theta]]
    identity = np.broadcast_to(np.eye(out, dim, k=out), (batch, out, dim))
    f = np.concatenate([y[:, out:], h], axis=1)
    return (
        f,
        np.concatenate([identity, j_mlp], axis=1),
        np.concatenate([np.zeros_like(j_theta), j_theta], axis=1),
    )


def _cnf_field_and_jacobians(case: Case, t: float, y: np.ndarray):
    """The `cnf` case's augmented field [f(t, z), -tr(df/dz)] and its Jacobians: the rows of f from the
    MLP's hand-written Jacobians above; the row of -tr(df/dz) from `pyode.scratch`'s hand-written
    second derivatives (`ScratchMLP.trace_gradients`), point by point."""
    from ..scratch import ScratchMLP

    batch, dim = y.shape
    z = y[:, :-1]
    mlp_case = replace(
        case, field={**case.field, "kind": "mlp"}, y0=case.y0[:, :-1], cotangent=case.cotangent[..., :-1]
    )
    f, j_z, j_theta_f = field_and_jacobians(mlp_case, t, z)
    mlp = ScratchMLP(case.mlp_weights(), case.field["activation"], bool(case.field["time_input"]))
    zeros = np.zeros_like(z)
    _, trace, grad_z, _, grad_weights = mlp.trace_gradients(t, z, zeros, -np.ones(batch))
    grads = {}
    for k, (weight, bias) in enumerate(grad_weights):
        grads[f"weight_{k}"], grads[f"bias_{k}"] = weight, bias
    j_theta_trace = np.concatenate([grads[name].reshape(batch, -1) for name in case.params], axis=1)
    j_y = np.zeros((batch, dim, dim))
    j_y[:, :-1, :-1] = j_z
    j_y[:, -1, :-1] = grad_z
    j_theta = np.concatenate([j_theta_f, j_theta_trace[:, None, :]], axis=1)
    return np.concatenate([f, -trace[:, None]], axis=1), j_y, j_theta


class ScipyBackend(AbstractBackend):
    """`scipy.integrate.solve_ivp` with the case's SciPy method (DOP853, or Radau when stiff)."""

    name = "scipy"

    def versions(self) -> dict[str, str]:
        return {p: version(p) for p in ("scipy", "numpy")}

    def prepare(self, case: Case) -> Callable[[float, float], Result]:
        from scipy.integrate import solve_ivp

        method = case.solvers["scipy"]
        batch, dim = case.y0.shape
        sizes = [value.size for value in case.params.values()]
        n_params = sum(sizes)
        t_span = (float(case.ts[0]), float(case.ts[-1]))

        plain = _flattened(lambda t, y: field_and_jacobians(case, t, y)[0], (batch, dim))

        def augmented(t, state):
            y = state[: batch * dim].reshape(batch, dim)
            s_y0 = state[batch * dim : batch * dim * (1 + dim)].reshape(batch, dim, dim)
            s_theta = state[batch * dim * (1 + dim) :].reshape(batch, dim, n_params)
            f, j_y, j_theta = field_and_jacobians(case, t, y)
            return np.concatenate([f.ravel(), (j_y @ s_y0).ravel(), (j_y @ s_theta + j_theta).ravel()])

        def once(rtol: float, atol: float) -> Result:
            rtol, atol = min(rtol, REFERENCE_TOLERANCE), min(atol, REFERENCE_TOLERANCE)
            options = dict(method=method, t_eval=case.ts, rtol=rtol, atol=atol)
            trajectory = solve_ivp(plain, t_span, case.y0.ravel(), **options)
            start = np.concatenate(
                [
                    case.y0.ravel(),
                    np.broadcast_to(np.eye(dim), (batch, dim, dim)).ravel(),
                    np.zeros(batch * dim * n_params),
                ]
            )
            sensitivity = solve_ivp(augmented, t_span, start, **options)
            for solution in (trajectory, sensitivity):
                if not solution.success:
                    raise RuntimeError(f"solve_ivp failed: {solution.message}")
            states = sensitivity.y.T
            s_y0 = states[:, batch * dim : batch * dim * (1 + dim)].reshape(-1, batch, dim, dim)
            s_theta = states[:, batch * dim * (1 + dim) :].reshape(-1, batch, dim, n_params)
            grad_y0 = np.einsum("tbi,tbij->bj", case.cotangent, s_y0)
            grad_theta = np.einsum("tbi,tbip->p", case.cotangent, s_theta)
            pieces = np.split(grad_theta, np.cumsum(sizes)[:-1])
            return Result(
                backend=self.name,
                case=case.name,
                trajectory=trajectory.y.T.reshape(-1, batch, dim),
                grad_y0=grad_y0,
                grad_params={
                    k: p.reshape(v.shape) for (k, v), p in zip(case.params.items(), pieces, strict=True)
                },
                nfe_forward=int(trajectory.nfev),
                nfe_backward=int(sensitivity.nfev),
                wall_time=0.0,
                method=(
                    f"scipy.integrate.solve_ivp({method}, rtol={rtol:g}, atol={atol:g}) for the trajectory; "
                    "gradients from the forward sensitivity equations, solved with the same settings"
                ),
            )

        return once


def _flattened(field, shape: tuple[int, ...]):
    """`field(t, y)` on states of `shape` as `solve_ivp` calls it: on one flat vector (the batch as
    one system)."""

    def f(t, state):
        return field(t, state.reshape(shape)).ravel()

    return f


class ScipyLibrary(AbstractLibrary):
    """SciPy in the work-precision study: `solve_ivp` on the flattened batch (it has no training step)."""

    name = "scipy"
    precision_solvers = SCIPY_SOLVERS
    precision_note = (
        "scipy.integrate.solve_ivp on the flattened batch (one system), NumPy field; t_eval by its "
        "dense output"
    )

    def field(self, case: Case, *, final: str | None = None):
        return numpy_field(case, final)

    def precision_runner(
        self, case: Case, solver: str, *, final: str | None = None, max_steps: int
    ) -> PrecisionRunner:
        """`solve_ivp` with `t_eval` at the save times (SciPy has no step limit: `max_steps` is not used)."""
        from scipy.integrate import solve_ivp

        shape = case.y0.shape
        f = _flattened(numpy_field(case, final), shape)
        span = (float(case.ts[0]), float(case.ts[-1]))

        def at(rtol: float, atol: float):
            def call():
                solution = solve_ivp(
                    f, span, case.y0.ravel(), method=solver, t_eval=case.ts, rtol=rtol, atol=atol
                )
                if not solution.success:
                    raise RuntimeError(f"scipy {solver}: {solution.message}")
                return solution

            def result():
                solution = call()
                return solution.y.T.reshape((len(case.ts),) + shape), int(solution.nfev)

            return result, call

        return at


def save_time_solution(case: Case, tolerance: float, *, final: str | None = None) -> tuple[np.ndarray, int]:
    """(ys (time, batch, dim), NFE): SciPy's DOP853 at rtol = atol = `tolerance` from save time to save
    time, so that every save time is the end of a step (no dense-output interpolation). SciPy raises
    an rtol below 100 machine epsilons to that, silently here."""
    from scipy.integrate import solve_ivp

    shape = case.y0.shape
    f = _flattened(numpy_field(case, final), shape)
    ys, nfe = [case.y0.ravel()], 0
    for t0, t1 in zip(case.ts[:-1], case.ts[1:], strict=True):
        with warnings.catch_warnings():  # SciPy's notice that it raises rtol to 100 epsilons
            warnings.filterwarnings("ignore", message=".*rtol.*too small", category=UserWarning)
            piece = solve_ivp(
                f, (float(t0), float(t1)), ys[-1], method="DOP853", rtol=tolerance, atol=tolerance
            )
        if not piece.success:
            raise RuntimeError(f"the reference solve failed: {piece.message}")
        ys.append(piece.y[:, -1])
        nfe += int(piece.nfev)
    return np.stack(ys).reshape((len(case.ts),) + shape), nfe


def vdp_cycle(mu: float, batch: int, *, tolerance: float = 1e-12) -> tuple[np.ndarray, float]:
    """(`batch` states on the Van der Pol limit cycle, evenly spread in time over half a period from
    the cycle's largest x, the period), by SciPy's DOP853 at `tolerance`: from (2, 0), 10 settling
    periods, then the period as the time between the next two maxima of x."""
    from scipy.integrate import solve_ivp

    def f(t, y):
        return [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]

    def maximum(t, y):  # v = dx/dt crosses 0 downward: x is largest
        return y[1]

    maximum.direction = -1
    approximate = (3 - 2 * np.log(2)) * mu + 2 * np.pi * mu ** (-1 / 3)
    options = dict(method="DOP853", rtol=tolerance, atol=tolerance)
    settled = solve_ivp(f, (0.0, 10 * approximate), [2.0, 0.0], **options).y[:, -1]
    cycles = solve_ivp(f, (0.0, 3 * approximate), settled, events=maximum, **options)
    times, states = cycles.t_events[0], cycles.y_events[0]
    if len(times) < 2:
        raise RuntimeError("the Van der Pol solution did not reach two maxima of x in three periods")
    period = float(times[1] - times[0])
    offsets = period * np.arange(batch) / (2 * batch)
    spread = solve_ivp(f, (0.0, period), states[0], t_eval=offsets, **options)
    return spread.y.T.copy(), period
