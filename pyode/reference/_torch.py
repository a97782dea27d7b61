"""torchdiffeq (PyTorch): `odeint` (backpropagation through the solver) and `odeint_adjoint`."""

import importlib.util
from collections.abc import Callable
from importlib.metadata import version

from ._base import AbstractBackend, BackendUnavailable, Result
from ._case import Case


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
