"""pyode itself (Diffrax): the implementation under test, one backend per gradient method."""

from collections.abc import Callable
from importlib.metadata import version

import numpy as np

from ._base import AbstractBackend, BackendUnavailable, Result
from ._case import Case


def pyode_field(case: Case):
    """The Equinox field of a case: an `MLPField` or a `SecondOrderField` holding its weights,
    `CNFDynamics` around an `MLPField`, or `VanDerPol`."""
    import jax.numpy as jnp

    from ..models import CNFDynamics, VanDerPol, mlp_field_from_weights, second_order_field_from_weights

    if case.field["kind"] == "vdp":
        return VanDerPol(jnp.asarray(case.params["theta"]))
    weights = [(jnp.asarray(w), jnp.asarray(b)) for w, b in case.mlp_weights()]
    options = {"activation": case.field["activation"], "time_input": bool(case.field["time_input"])}
    if case.field["kind"] == "sonode":
        return second_order_field_from_weights(weights, **options)
    mlp = mlp_field_from_weights(weights, **options)
    return CNFDynamics(mlp) if case.field["kind"] == "cnf" else mlp


def field_gradients(case: Case, grad_field) -> dict[str, np.ndarray]:
    """The gradient of a field (a pytree like `pyode_field`'s) in the case's parameter names."""
    if case.field["kind"] == "vdp":
        return {"theta": np.asarray(grad_field.theta)}
    if case.field["kind"] == "sonode":
        grad_field = grad_field.acceleration
    grads = {}
    for k, (weight, bias) in enumerate(grad_field.weights()):
        grads[f"weight_{k}"], grads[f"bias_{k}"] = np.asarray(weight), np.asarray(bias)
    return grads


class PyodeBackend(AbstractBackend):
    """`pyode.solve` differentiated with `equinox.filter_grad` through one gradient method."""

    def __init__(self, adjoint: str):
        self.adjoint = adjoint
        self.name = f"pyode-{adjoint}"

    def versions(self) -> dict[str, str]:
        return {p: version(p) for p in ("pyode", "jax", "diffrax", "equinox")}

    def check_available(self, case: Case) -> None:
        import pyode

        if case.solvers["pyode"] not in pyode.SOLVERS:
            raise BackendUnavailable(f"the case's solver {case.solvers['pyode']!r} is not in pyode.SOLVERS")

    def prepare(self, case: Case) -> Callable[[float, float], Result]:
        import equinox as eqx
        import jax
        import jax.numpy as jnp

        import pyode

        if case.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        solver = case.solvers["pyode"]
        field = pyode_field(case)
        y0, ts, cotangent = (jnp.asarray(a) for a in (case.y0, case.ts, case.cotangent))
        options = dict(
            solver=solver,
            adjoint=self.adjoint,
            max_steps=100_000,
            steps_at_save_times=True,
            count_evaluations=True,
        )

        @eqx.filter_jit
        def forward(field, y0, rtol, atol):
            solution = pyode.solve(field, y0, ts, rtol=rtol, atol=atol, **options)
            return solution.ys, solution.nfe_forward

        @eqx.filter_jit
        @eqx.filter_grad
        def gradients(field_and_y0, rtol, atol):
            field, y0 = field_and_y0
            ys = pyode.solve(field, y0, ts, rtol=rtol, atol=atol, **options).ys
            return jnp.sum(cotangent * ys)

        method = (
            f"pyode.solve(solver={solver!r}, adjoint={self.adjoint!r}, steps_at_save_times=True), "
            "equinox.filter_grad"
        )

        implicit = pyode.SOLVERS[solver].implicit
        if implicit:
            method += (
                "; NFE as executed: backward = evaluations of the gradient call beyond its forward "
                "solve's (Newton's JVPs included)"
            )

        def once(rtol: float, atol: float) -> Result:
            tolerances = jnp.asarray(rtol), jnp.asarray(atol)
            with pyode.counting() as forward_counts:
                ys, nfe_forward = jax.block_until_ready(forward(field, y0, *tolerances))
            nfe_forward = forward_counts.forward if implicit else int(nfe_forward)
            with pyode.counting() as counts:
                grad_field, grad_y0 = jax.block_until_ready(gradients((field, y0), *tolerances))
            nfe_backward = counts.forward - nfe_forward if implicit else counts.backward
            return Result(
                backend=self.name,
                case=case.name,
                trajectory=np.asarray(ys),
                grad_y0=np.asarray(grad_y0),
                grad_params=field_gradients(case, grad_field),
                nfe_forward=nfe_forward,
                nfe_backward=nfe_backward,
                wall_time=0.0,
                method=method,
            )

        return once
