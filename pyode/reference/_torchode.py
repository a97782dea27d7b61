"""torchode (PyTorch): every sample of a batch solved as its own ODE, gradients by backpropagation
through the solver (`torchode.AutoDiffAdjoint`).

torchode keeps a step size, an error estimate and an accept/reject decision per sample (its error
norm is each sample's RMS), where torchdiffeq, Diffrax and SciPy solve the batch as one system
under one RMS norm; at the same tolerances the trajectories therefore differ by about the
tolerance. Its `IntegralController` is used (the controller of torchode's own benchmark and of
pyode's `PIDController` defaults: pcoeff 0, icoeff 1), with torchode's initial-step selection.

Compiled mode is `torch.compile` of the solver's `solve` method. torchode documents
`torch.jit.script(adjoint)`, but TorchScript is deprecated since torch 2.11 and scripting
torchode 1.0.1's `AutoDiffAdjoint` fails under torch 2.13 with an internal assert
(`type INTERNAL ASSERT FAILED at .../torch/csrc/jit/ir/ir.h`); and `torch.compile(adjoint)`, as
torchode's own test writes it, compiles only `forward`, so its `.solve` runs eagerly.

Here are its solver (`torchode_solver`), its cross-validation backend and its library for the
benchmarks (training step, work-precision solves); its field is `torch_field`.
"""

import importlib.util
from collections.abc import Callable
from importlib.metadata import version

from ._base import AbstractBackend, BackendUnavailable, Result
from ._case import Case
from ._library import MethodUnavailable, PrecisionRunner, TrainingStep, one_line
from ._problem import Problem
from ._torch import AbstractTorchLibrary, torch_field, torch_training_step

TORCHODE_METHODS = {"dopri5": "Dopri5", "tsit5": "Tsit5", "heun": "Heun"}
"""pyode's solver names that torchode has (adaptive ones), by torchode's class name."""
TORCHODE_MAX_STEPS = 100_000


def torchode_solver(
    field,
    method: str,
    rtol: float,
    atol: float,
    *,
    compiled: bool = False,
    max_steps: int = TORCHODE_MAX_STEPS,
) -> Callable:
    """A function (y0 (batch, dim), ts (time,)) -> torchode `Solution` solving dy/dt = field(t, y).

    `field` is a torch module taking (t, y) with y (batch, dim) and t of shape (batch, 1) (one time
    per sample, as torchode evaluates: `torch_field` takes it so); `compiled` needs one without
    Python-side state that changes (a `torch_field` with `.counting = False`). The solution's `ys`
    is (batch, time, dim) and `stats["n_f_evals"]` counts the batched evaluations (equal for every
    sample: each evaluation runs on the whole batch, samples that have finished included). A failed
    solve raises.
    """
    import torch
    import torchode

    if method not in TORCHODE_METHODS:
        raise ValueError(f"torchode has no {method!r}; it has {', '.join(TORCHODE_METHODS)}")

    class PerSampleTime(torch.nn.Module):
        def __init__(self, field):
            super().__init__()
            self.field = field

        def forward(self, t, y):
            return self.field(t[:, None], y)

    term = torchode.ODETerm(PerSampleTime(field))
    step = getattr(torchode, TORCHODE_METHODS[method])(term=term)
    controller = torchode.IntegralController(atol=atol, rtol=rtol, term=term)
    adjoint = torchode.AutoDiffAdjoint(step, controller, max_steps=max_steps)
    solve = torch.compile(adjoint.solve) if compiled else adjoint.solve

    def run(y0, ts):
        problem = torchode.InitialValueProblem(y0=y0, t_eval=ts.to(y0.dtype).repeat(y0.shape[0], 1))
        solution = solve(problem)
        if bool((solution.status != 0).any()):
            codes = sorted({int(c) for c in solution.status.unique()} - {0})
            names = ", ".join(torchode.Status(c).name for c in codes)
            raise RuntimeError(f"torchode's solve failed: {names}")
        return solution

    return run


class TorchodeBackend(AbstractBackend):
    """torchode's solver for the case's torchdiffeq method (dopri5), float64, backpropagated."""

    name = "torchode"

    def check_available(self, case: Case) -> None:
        for module in ("torch", "torchode"):
            if importlib.util.find_spec(module) is None:
                raise BackendUnavailable(f"{module} is not installed (pip install 'pyode[torch]')")
        if case.solvers["torchdiffeq"] not in TORCHODE_METHODS:
            raise BackendUnavailable(
                f"torchode has no {case.solvers['torchdiffeq']!r} (it has {', '.join(TORCHODE_METHODS)})"
            )

    def versions(self) -> dict[str, str]:
        return {p: version(p) for p in ("torch", "torchode")}

    def prepare(self, case: Case) -> Callable[[float, float], Result]:
        import torch

        method = case.solvers["torchdiffeq"]
        field = torch_field(case)
        ts = torch.tensor(case.ts, dtype=torch.float64)
        cotangent = torch.tensor(case.cotangent, dtype=torch.float64).transpose(0, 1)

        def once(rtol: float, atol: float) -> Result:
            solve = torchode_solver(field, method, rtol, atol)
            y0 = torch.tensor(case.y0, dtype=torch.float64, requires_grad=True)
            field.zero_grad()
            solution = solve(y0, ts)
            loss = torch.sum(cotangent * solution.ys)
            nfe = int(solution.stats["n_f_evals"].max())
            loss.backward()
            return Result(
                backend=self.name,
                case=case.name,
                trajectory=solution.ys.detach().transpose(0, 1).numpy().copy(),
                grad_y0=y0.grad.numpy().copy(),
                grad_params={k: p.grad.numpy().copy() for k, p in field.case_params.items()},
                nfe_forward=nfe,
                nfe_backward=nfe,
                wall_time=0.0,
                method=(
                    f"torchode.AutoDiffAdjoint({TORCHODE_METHODS[method]}, IntegralController), "
                    "torch.autograd; each sample its own solve (the backward count is the VJPs of the "
                    "recorded forward evaluations)"
                ),
            )

        return once


class TorchodeLibrary(AbstractTorchLibrary):
    """torchode in the benchmarks: `AutoDiffAdjoint` (backpropagation through the solver), eager or under
    `torch.compile`, on adaptive problems only (its fixed-step controller is left out); eager under
    `torch.no_grad` for the work-precision study."""

    name = "torchode"
    methods = ("autodiff", "autodiff-compiled")
    adaptive_only = True
    precision_solvers = tuple(TORCHODE_METHODS)
    precision_note = (
        "torchode.AutoDiffAdjoint with its IntegralController, eager, under torch.no_grad; every "
        "sample its own step size and error norm (NFE: batched evaluations)"
    )

    def training_step(self, problem: Problem, method: str, *, count_every: int) -> TrainingStep:
        """The compiled step is compiled here, by a first call (45-160 s on the 2-core development
        machine), and a compiler that fails makes it `MethodUnavailable`."""
        import torch

        field = torch_field(problem.case()).to(getattr(torch, problem.dtype))
        compiled = method.endswith("-compiled")
        field.counting = not compiled  # NFE from torchode's statistics; a counter would recompile

        def build():
            solve = torchode_solver(field, problem.solver, problem.rtol, problem.atol, compiled=compiled)

            def solve_batch(y0, ts):
                solution = solve(y0, ts)
                return solution.ys.transpose(0, 1), int(solution.stats["n_f_evals"].max())

            return torch_training_step(problem, self.name, method, field, solve_batch)

        if not compiled:
            return build()
        try:
            step = build()
            step.run()
        except Exception as error:  # the compiler's failure, in one line
            raise MethodUnavailable(f"torch.compile of torchode's solve failed: {one_line(error)}") from error
        return step

    def precision_runner(
        self, case: Case, solver: str, *, final: str | None = None, max_steps: int
    ) -> PrecisionRunner:
        import torch

        field = self.field(case, final=final)
        y0, ts = torch.tensor(case.y0), torch.tensor(case.ts)

        def at(rtol: float, atol: float):
            solve = torchode_solver(field, solver, rtol, atol, max_steps=max_steps)

            def call():
                with torch.no_grad():
                    return solve(y0, ts)

            def result():
                solution = call()
                return solution.ys.transpose(0, 1).numpy().copy(), int(solution.stats["n_f_evals"].max())

            return result, call

        return at
