"""torchdiffeq (PyTorch): `odeint` (backpropagation through the solver) and `odeint_adjoint`.

The torch field adapter (`torch_field`, torchode's too), the cross-validation backend, and the library
for the benchmarks: the training step of a torch library (`torch_training_step`, shared with
torchode) and torchdiffeq's work-precision solves.
"""

import importlib.util
from collections.abc import Callable
from importlib.metadata import version

from ._base import AbstractBackend, BackendUnavailable, Result
from ._case import Case
from ._library import AbstractLibrary, PrecisionRunner, TrainingStep
from ._problem import Problem

TORCHDIFFEQ_SOLVERS = ("dopri5", "dopri8", "bosh3")
"""The adaptive solvers of torchdiffeq that the work-precision study runs."""


def torch_field(case: Case):
    """A torch module computing the case's field, counting its evaluations in `.calls`.

    A `cnf` case's trace is computed by torch.autograd (exact), independently of pyode's. Set
    `.counting = False` before `torch.compile`: it treats the integer counter as a constant, so that
    every evaluation would compile anew.
    """
    import torch

    activations = {
        "tanh": torch.tanh,
        "softplus": lambda h: torch.logaddexp(h, torch.zeros_like(h)),  # as JAX's: no cut-off at 20
        "elu": torch.nn.functional.elu,
        "silu": torch.nn.functional.silu,
        "relu": torch.relu,
    }

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0
            self.counting = True
            self.case_params = torch.nn.ParameterDict(
                {k: torch.nn.Parameter(torch.tensor(v, dtype=torch.float64)) for k, v in case.params.items()}
            )

        def forward(self, t, y):
            if self.counting:
                self.calls += 1
            p = self.case_params
            if case.field["kind"] == "vdp":
                x, v = y[..., 0], y[..., 1]
                return torch.stack([v, p["theta"][0] * (1 - x**2) * v - x], dim=-1)
            if case.field["kind"] == "cnf":
                return self.augmented(t, y)
            if case.field["kind"] == "sonode":  # (x, v)' = (v, MLP(x, v))
                return torch.cat([y[..., y.shape[-1] // 2 :], self.mlp(t, y)], dim=-1)
            return self.mlp(t, y)

        def mlp(self, t, h):
            p = self.case_params
            sigma = activations[case.field["activation"]]
            if case.field["time_input"]:
                h = torch.cat([h, t.expand(h.shape[:-1] + (1,)).to(h.dtype)], dim=-1)
            layers = len(case.mlp_weights())
            for k in range(layers):
                h = h @ p[f"weight_{k}"].T + p[f"bias_{k}"]
                if k < layers - 1:
                    h = sigma(h)
            return h

        def augmented(self, t, y):
            """[f(t, z), -tr(df/dz)] with the trace from torch.autograd, one input direction at a time
            (a graph is kept, so that the trace can be differentiated in turn)."""
            with torch.enable_grad():
                z = y[..., :-1]
                if not z.requires_grad:
                    z = z.detach().requires_grad_(True)
                value = self.mlp(t, z)
                trace = sum(
                    torch.autograd.grad(value[..., i].sum(), z, create_graph=True)[0][..., i]
                    for i in range(value.shape[-1])
                )
            return torch.cat([value, -trace[..., None]], dim=-1)

    return Field()


class TorchdiffeqBackend(AbstractBackend):
    """torchdiffeq's dopri5 in float64; evaluations counted on the module's forward."""

    def __init__(self, adjoint: bool, seminorm: bool = False):
        self.adjoint, self.seminorm = adjoint, seminorm
        self.name = ("torchdiffeq-adjoint" if adjoint else "torchdiffeq-odeint") + (
            "-seminorm" if seminorm else ""
        )

    def check_available(self, case: Case) -> None:
        for module in ("torch", "torchdiffeq"):
            if importlib.util.find_spec(module) is None:
                raise BackendUnavailable(f"{module} is not installed (pip install 'pyode[torch]')")

    def versions(self) -> dict[str, str]:
        return {p: version(p) for p in ("torch", "torchdiffeq")}

    def prepare(self, case: Case) -> Callable[[float, float], Result]:
        import torch
        import torchdiffeq

        solver = case.solvers["torchdiffeq"]
        odeint = torchdiffeq.odeint_adjoint if self.adjoint else torchdiffeq.odeint
        field = torch_field(case)
        ts = torch.tensor(case.ts, dtype=torch.float64)
        cotangent = torch.tensor(case.cotangent, dtype=torch.float64)
        method = f"torchdiffeq.{odeint.__name__}(method={solver!r}), torch.autograd"
        adjoint_options = {"adjoint_options": {"norm": "seminorm"}} if self.seminorm else {}
        if self.seminorm:
            method += ", adjoint_options=dict(norm='seminorm')"
        if not self.adjoint:
            method += " (the backward count is the VJPs of the recorded forward evaluations)"

        def once(rtol: float, atol: float) -> Result:
            options = dict(rtol=rtol, atol=atol, method=solver)
            y0 = torch.tensor(case.y0, dtype=torch.float64, requires_grad=True)
            field.zero_grad()
            with torch.no_grad():
                field.calls = 0
                ys = torchdiffeq.odeint(field, y0, ts, **options)
                nfe_forward = field.calls
            field.calls = 0
            loss = torch.sum(cotangent * odeint(field, y0, ts, **options, **adjoint_options))
            recorded = field.calls
            loss.backward()
            nfe_backward = recorded if not self.adjoint else field.calls - recorded
            return Result(
                backend=self.name,
                case=case.name,
                trajectory=ys.detach().numpy(),
                grad_y0=y0.grad.numpy().copy(),
                grad_params={k: p.grad.numpy().copy() for k, p in field.case_params.items()},
                nfe_forward=nfe_forward,
                nfe_backward=nfe_backward,
                wall_time=0.0,
                method=method,
            )

        return once


def torch_field_with_final(case: Case, final: str | None):
    """(the torch module of `case`, its output through `final` (None or tanh); the `torch_field`
    module inside it, which counts evaluations in `.calls`)."""
    import torch

    field = torch_field(case)
    if final is None:
        return field, field

    class FinalTanh(torch.nn.Module):
        def __init__(self, field):
            super().__init__()
            self.field = field

        def forward(self, t, y):
            return torch.tanh(self.field(t, y))

    return FinalTanh(field), field


def set_torch_threads(threads: int) -> None:
    """Give torch `threads` CPU threads, if torch is here."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def _torch_loss(problem: Problem):
    """(loss of ys (time, batch, dim), the readout's tensors to zero before a step) in torch."""
    import torch

    if problem.loss == "bce":
        dtype = getattr(torch, problem.dtype)
        readout_weight = torch.tensor(problem.readout_weight, requires_grad=True)
        readout_bias = torch.tensor(problem.readout_bias, dtype=dtype, requires_grad=True)
        labels = torch.tensor(problem.labels)

        def bce(ys):
            logits = ys[-1] @ readout_weight + readout_bias
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)

        return bce, [readout_weight, readout_bias]
    targets = torch.tensor(problem.targets)

    def mse(ys):
        return torch.mean((ys[1:] - targets[1:]) ** 2)

    return mse, []


def torch_training_step(
    problem: Problem, library: str, method: str, field, solve, continuous: bool = False
) -> TrainingStep:
    """The `TrainingStep` of a torch library: `solve(y0, ts)` gives ys (time, batch, dim) and the
    forward evaluations it recorded for backpropagation; `field` is `torch_field`'s module."""
    import torch

    dtype = getattr(torch, problem.dtype)
    loss_of, extra = _torch_loss(problem)
    y0, ts = torch.tensor(problem.y0), torch.tensor(problem.ts)

    def forward_backward():
        field.zero_grad()
        for tensor in extra:
            tensor.grad = None
        field.calls = 0
        ys, recorded = solve(y0, ts)
        loss = loss_of(ys)
        loss.backward()
        return loss, recorded

    def run() -> float:
        return forward_backward()[0].item()

    def gradient():
        loss, _ = forward_backward()
        layers = len(problem.weights)
        p = field.case_params
        grads = [
            (p[f"weight_{k}"].grad.numpy().copy(), p[f"bias_{k}"].grad.numpy().copy()) for k in range(layers)
        ]
        return loss.item(), grads

    def count():
        _, recorded = forward_backward()
        return recorded, (field.calls - recorded) if continuous else recorded

    t = torch.tensor(0.0, dtype=dtype)
    cotangent = torch.ones_like(y0)
    parameters = list(field.parameters())

    def evaluate():
        with torch.no_grad():
            return field(t, y0)

    def evaluate_vjp():
        y = y0.detach().requires_grad_(True)
        value = field(t, y)
        return torch.autograd.grad(value, [y, *parameters], cotangent)

    return TrainingStep(library, method, run, gradient, count, evaluate, evaluate_vjp, continuous=continuous)


class AbstractTorchLibrary(AbstractLibrary):
    """A PyTorch library: its field is `torch_field`'s module, and torch gets JAX's CPU threads."""

    def field(self, case: Case, *, final: str | None = None):
        return torch_field_with_final(case, final)[0]

    def set_threads(self, threads: int) -> None:
        set_torch_threads(threads)


class TorchdiffeqLibrary(AbstractTorchLibrary):
    """torchdiffeq in the benchmarks: `odeint`, `odeint_adjoint` (and its seminorm) then
    `loss.backward()`; `odeint` under `torch.no_grad` for the work-precision study."""

    name = "torchdiffeq"
    methods = ("odeint", "odeint_adjoint", "odeint_adjoint-seminorm")
    seminorm = ("odeint_adjoint-seminorm",)
    precision_solvers = TORCHDIFFEQ_SOLVERS
    precision_note = "torchdiffeq.odeint under torch.no_grad; interpolates at save times"

    def training_step(self, problem: Problem, method: str, *, count_every: int) -> TrainingStep:
        import torch
        import torchdiffeq

        dtype = getattr(torch, problem.dtype)
        field = torch_field(problem.case()).to(dtype)
        adjoint = method.startswith("odeint_adjoint")
        odeint = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
        options = {"method": problem.solver}
        if problem.steps is None:
            options.update(rtol=problem.rtol, atol=problem.atol)
        else:
            options["options"] = {"step_size": float(problem.ts[-1] - problem.ts[0]) / problem.steps}
        if method in self.seminorm:
            options["adjoint_options"] = {"norm": "seminorm"}

        def solve(y0, ts):
            ys = odeint(field, y0, ts, **options)
            return ys, field.calls

        return torch_training_step(problem, self.name, method, field, solve, continuous=adjoint)

    def precision_runner(
        self, case: Case, solver: str, *, final: str | None = None, max_steps: int
    ) -> PrecisionRunner:
        """`odeint` under `torch.no_grad` (torchdiffeq has no step limit: `max_steps` is not used)."""
        import torch
        import torchdiffeq

        field, counter = torch_field_with_final(case, final)
        y0, ts = torch.tensor(case.y0), torch.tensor(case.ts)

        def at(rtol: float, atol: float):
            def call():
                with torch.no_grad():
                    return torchdiffeq.odeint(field, y0, ts, rtol=rtol, atol=atol, method=solver)

            def result():
                counter.calls = 0
                ys = call()
                return ys.numpy().copy(), int(counter.calls)

            return result, call

        return at
