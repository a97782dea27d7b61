"""pyode.scratch: the from-scratch NumPy solver and hand-written continuous adjoint.

Its field adapter (`scratch_field`, also SciPy's), its cross-validation backend and its library for
the benchmarks (training step by the hand-written adjoint, work-precision solves).
"""

from collections.abc import Callable
from importlib.metadata import version

import numpy as np

from ._base import AbstractBackend, Result
from ._case import Case
from ._library import AbstractLibrary, PrecisionRunner, TrainingStep
from ._problem import Problem


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


def numpy_field(case: Case, final: str | None = None):
    """`scratch_field` of the case, its output through `final` (None or tanh) if given."""
    field = scratch_field(case)
    if final is None:
        return field
    return lambda t, y: np.tanh(field(t, y))


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


class ScratchLibrary(AbstractLibrary):
    """The scratch solvers in the benchmarks: `adjoint_gradients` (the hand-written continuous adjoint)
    with the loss's dL/dys written out in NumPy; `pyode.scratch.odeint` for the work-precision study."""

    name = "scratch"
    methods = ("adjoint",)
    precision_note = "pyode.scratch.odeint (NumPy); steps onto every save time (no interpolation)"

    @property
    def precision_solvers(self) -> tuple[str, ...]:
        """The adaptive tableaus of `pyode.scratch.TABLEAUS`."""
        from ..scratch import TABLEAUS

        return tuple(name for name, tableau in TABLEAUS.items() if tableau.b_error is not None)

    def field(self, case: Case, *, final: str | None = None):
        return numpy_field(case, final)

    def training_step(self, problem: Problem, method: str, *, count_every: int) -> TrainingStep:
        from ..scratch import adjoint_gradients, unflatten_weights

        field = scratch_field(problem.case())
        loss = _numpy_loss(problem)

        def gradients():
            return adjoint_gradients(
                field, problem.y0, problem.ts, loss, method=problem.solver, **problem.step_options()
            )

        def gradient():
            result = gradients()
            return result.loss, unflatten_weights(result.grad_theta, field.weights)

        def count():
            result = gradients()
            return result.nfe_forward, result.nfe_backward

        cotangent = np.ones_like(problem.y0)
        return TrainingStep(
            library=self.name,
            method=method,
            run=lambda: gradients().loss,
            gradient=gradient,
            count=count,
            evaluate=lambda: field(0.0, problem.y0),
            evaluate_vjp=lambda: field.vjp(0.0, problem.y0, cotangent),
            continuous=True,
        )

    def precision_runner(
        self, case: Case, solver: str, *, final: str | None = None, max_steps: int
    ) -> PrecisionRunner:
        from ..scratch import odeint

        field = numpy_field(case, final)

        def at(rtol: float, atol: float):
            def call():
                return odeint(
                    field, case.y0, case.ts, method=solver, rtol=rtol, atol=atol, max_steps=max_steps
                )

            def result():
                solution = call()
                return solution.ys, int(solution.nfe)

            return result, call

        return at


def _numpy_loss(problem: Problem):
    """The problem's loss as the scratch adjoint takes it: ys -> (L, dL/dys)."""
    if problem.loss == "bce":
        w, b, labels = problem.readout_weight, problem.readout_bias, problem.labels

        def bce(ys):
            logits = ys[-1] @ w + b
            value = float(np.mean(np.logaddexp(0.0, logits) - labels * logits))
            grad = np.zeros_like(ys)
            grad[-1] = np.outer((1.0 / (1.0 + np.exp(-logits)) - labels) / len(labels), w)
            return value, grad

        return bce
    targets = problem.targets
    count = targets[1:].size

    def mse(ys):
        difference = ys - targets
        difference[0] = 0.0
        return float(np.sum(difference**2) / count), 2.0 * difference / count

    return mse
