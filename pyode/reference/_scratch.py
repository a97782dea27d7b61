"""pyode.scratch: the from-scratch NumPy solver and hand-written continuous adjoint."""

from collections.abc import Callable
from importlib.metadata import version

import numpy as np

from ._base import AbstractBackend, Result
from ._case import Case


def scratch_field(case: Case):
    """The NumPy field of a case: a `ScratchMLP` or `ScratchSecondOrder` holding its weights,
    `ScratchCNF` around a `ScratchMLP`, or `ScratchVanDerPol`."""
    from .. import scratch

    if case.field["kind"] == "vdp":
        return scratch.ScratchVanDerPol(float(case.params["theta"][0]))
    build = scratch.ScratchSecondOrder if case.field["kind"] == "sonode" else scratch.ScratchMLP
    field = build(
        [(np.asarray(w), np.asarray(b)) for w, b in case.mlp_weights()],
        activation=case.field["activation"],
        time_input=bool(case.field["time_input"]),
    )
    return scratch.ScratchCNF(field) if case.field["kind"] == "cnf" else field


class ScratchBackend(AbstractBackend):
    """`pyode.scratch.adjoint_gradients` on the case's field (`scratch_field`).

    On a stiff case the backward solve restarts z from the forward solution at every step
    (`restart="steps"`): re-integrating a stiff state backward between save times diverges.
    """

    name = "scratch"

    def versions(self) -> dict[str, str]:
        return {p: version(p) for p in ("pyode", "numpy")}

    def prepare(self, case: Case) -> Callable[[float, float], Result]:
        from .. import scratch

        solver = case.solvers["pyode"] if case.solvers["pyode"] in scratch.TABLEAUS else "dopri5"
        field = scratch_field(case)
        loss = scratch.linear_loss(case.cotangent)
        restart = "steps" if case.stiff else "save_times"

        def once(rtol: float, atol: float) -> Result:
            grads = scratch.adjoint_gradients(
                field, case.y0, case.ts, loss, method=solver, rtol=rtol, atol=atol, restart=restart
            )
            if case.field["kind"] == "vdp":
                grad_params = {"theta": grads.grad_theta}
            else:
                grad_params = {}
                for k, (weight, bias) in enumerate(
                    scratch.unflatten_weights(grads.grad_theta, field.weights)
                ):
                    grad_params[f"weight_{k}"], grad_params[f"bias_{k}"] = weight, bias
            return Result(
                backend=self.name,
                case=case.name,
                trajectory=grads.ys,
                grad_y0=grads.grad_y0,
                grad_params=grad_params,
                nfe_forward=grads.nfe_forward,
                nfe_backward=grads.nfe_backward,
                wall_time=0.0,
                method=(
                    f"pyode.scratch.adjoint_gradients(method={solver!r}, restart={restart!r}): "
                    "NumPy, continuous adjoint"
                ),
            )

        return once
