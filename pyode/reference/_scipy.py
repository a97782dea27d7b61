"""SciPy: `solve_ivp` at tight tolerance, gradients from the forward sensitivity equations.

With S = dy/dy0 and S_theta = dy/dtheta, the augmented system is
dy/dt = f, dS/dt = J_y S, dS_theta/dt = J_y S_theta + J_theta (S(0) = I, S_theta(0) = 0),
and the loss gradients are sums of the cotangent against S and S_theta at the save times.
The Jacobians of the field are written out by hand below (no autodiff); a `cnf` case's trace row
uses `pyode.scratch`'s hand-written second derivatives.
"""

from collections.abc import Callable
from dataclasses import replace
from importlib.metadata import version

import numpy as np

from ._base import AbstractBackend, Result
from ._case import Case

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

        def plain(t, state):
            return field_and_jacobians(case, t, state.reshape(batch, dim))[0].ravel()

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
