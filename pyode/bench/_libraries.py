"""One training step of a `Problem` in each library: pyode, torchdiffeq, torchode and the NumPy
scratch adjoint.

`prepare(problem, library, method)` builds a `TrainingStep`: the step itself (forward
and gradient, blocking until done), a counted run giving the evaluation counts, and the
network alone (one batched evaluation, with and without its vector-Jacobian product) for
the solver-overhead ratio.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._problems import Problem

METHODS = {
    "pyode": ("checkpoint", "backsolve", "backsolve-seminorm"),
    "torchdiffeq": ("odeint", "odeint_adjoint", "odeint_adjoint-seminorm"),
    "torchode": ("autodiff", "autodiff-compiled"),
    "scratch": ("adjoint",),
}
CONTINUOUS = {"backsolve", "backsolve-seminorm", "odeint_adjoint", "odeint_adjoint-seminorm", "adjoint"}
"""Methods that solve an adjoint ODE backward: their forward evaluations have no VJP paired with them."""
SEMINORM = {"backsolve-seminorm", "odeint_adjoint-seminorm"}
FIXED_STEP = {"torchode"}
"""Libraries whose methods need an adaptive problem (torchode's fixed-step controller is left out)."""
NETWORK_LOOP = 32
"""pyode's network is timed as this many evaluations in one compiled loop (no dispatch per call)."""


class MethodUnavailable(RuntimeError):
    """This method cannot run here (e.g. its compiler fails); the message says why in one line."""


@dataclass(frozen=True)
class TrainingStep:
    """A library's training step on a problem, and the pieces the measurements need.

    - `run()`: one step (loss and gradient), blocking; returns the loss;
    - `gradient()`: (loss, [(dL/dW, dL/db), ...] of the field) as NumPy;
    - `count()`: (forward, backward) evaluation counts of one step;
    - `evaluate()` / `evaluate_vjp()`: `network_calls` batched evaluations of the field
      alone, without and with a vector-Jacobian product (to parameters and state).
    """

    library: str
    method: str
    run: Callable[[], float]
    gradient: Callable[[], tuple[float, list]]
    count: Callable[[], tuple[int, int]]
    evaluate: Callable[[], object]
    evaluate_vjp: Callable[[], object]
    network_calls: int = 1
    run_counted: Callable[[], float] | None = None
    """pyode only: the step with the evaluation counters on (every evaluation reports to the host)."""
    training_cycle: Callable[[], object] | None = None
    """pyode only: `count_every` steps as `pyode.train.fit` runs them (update, checks; one counted)."""
    training_step: Callable[[], object] | None = None
    """pyode only: one bare step as `pyode.train.fit` runs it."""
    compiled_memory: Callable[[], dict] | None = None
    """pyode only: XLA's memory analysis of the compiled step (bytes)."""

    @property
    def name(self) -> str:
        return f"{self.library}-{self.method}"

    @property
    def continuous(self) -> bool:
        return self.method in CONTINUOUS


def check_method(problem: Problem, library: str, method: str) -> None:
    """Raise a ValueError if `library` has no `method` or it does not apply to `problem`."""
    if library not in METHODS:
        raise ValueError(f"unknown library {library!r}; choose one of {', '.join(METHODS)}")
    if method not in METHODS[library]:
        raise ValueError(f"{library} has no method {method!r}; choose one of {', '.join(METHODS[library])}")
    if method in SEMINORM and problem.steps is not None:
        raise ValueError(f"{method} changes the error norm of an adaptive solve; this problem is fixed-step")
    if library in FIXED_STEP and problem.steps is not None:
        raise ValueError(f"{library} is benchmarked on adaptive problems only; this problem is fixed-step")


def applicable_methods(problem: Problem, libraries) -> list[tuple[str, str]]:
    """(library, method) pairs of `libraries` that apply to `problem`."""
    pairs = []
    for library in libraries:
        for method in METHODS[library]:
            fixed = problem.steps is not None
            if not (fixed and (method in SEMINORM or library in FIXED_STEP)):
                pairs.append((library, method))
    return pairs


def prepare(problem: Problem, library: str, method: str, *, count_every: int = 50) -> TrainingStep:
    """The training step of `problem` in `library` by `method` (pyode's loop counting every `count_every`)."""
    check_method(problem, library, method)
    if library == "pyode":
        return _pyode(problem, method, count_every)
    builders = {"torchdiffeq": _torchdiffeq, "torchode": _torchode, "scratch": _scratch}
    return builders[library](problem, method)


def _pyode(problem: Problem, method: str, count_every: int) -> TrainingStep:
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from .. import counting
    from ..reference import pyode_field

    field = pyode_field(problem.case())
    tolerances = (
        {"rtol": problem.rtol, "atol": problem.atol} if problem.steps is None else {"steps": problem.steps}
    )
    options = {"solver": problem.solver, "adjoint": method, **tolerances}

    def compiled_step(count_evaluations: bool):
        model, loss_fn, batch = _pyode_model(
            problem, field, dict(options, count_evaluations=count_evaluations)
        )
        params, static = eqx.partition(model, eqx.is_inexact_array)

        @jax.jit
        def step(params, batch):
            def loss_of(p):
                return loss_fn(eqx.combine(p, static), batch)

            (loss, aux), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
            return loss, aux, grads

        def memory() -> dict:
            analysis = step.lower(params, batch).compile().memory_analysis()
            names = ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes")
            return {name: int(getattr(analysis, name)) for name in names}

        return (lambda: jax.block_until_ready(step(params, batch))), memory

    (bare, memory), (counted, _) = compiled_step(False), compiled_step(True)
    training_step, training_cycle = _training_loop(problem, field, options, count_every)

    def run() -> float:
        return float(bare()[0])

    def run_counted() -> float:
        return float(counted()[0])

    def gradient():
        loss, _, grads = bare()
        grads = grads.ode.field if problem.loss == "bce" else grads
        return float(loss), [(np.asarray(w), np.asarray(b)) for w, b in grads.weights()]

    def count():
        with counting() as counts:
            _, aux, _ = counted()
        return int(aux["nfe_forward"]), counts.backward

    y = jnp.asarray(problem.y0)
    params, static = eqx.partition(field, eqx.is_inexact_array)
    small = jnp.asarray(1e-6, y.dtype)

    def f(p, y):
        return eqx.combine(p, static)(0.0, y)

    @jax.jit
    def evaluations(params, y):
        return jax.lax.fori_loop(0, NETWORK_LOOP, lambda _, y: y + small * f(params, y), y)

    @jax.jit
    def evaluations_vjp(params, y):
        def body(_, carry):
            y, total = carry
            value, vjp = jax.vjp(f, params, y)
            grad_params, grad_y = vjp(y)
            total = jax.tree_util.tree_map(jnp.add, total, grad_params)
            return y + small * (value + grad_y), total

        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return jax.lax.fori_loop(0, NETWORK_LOOP, body, (y, zeros))

    return TrainingStep(
        library="pyode",
        method=method,
        run=run,
        gradient=gradient,
        count=count,
        evaluate=lambda: jax.block_until_ready(evaluations(params, y)),
        evaluate_vjp=lambda: jax.block_until_ready(evaluations_vjp(params, y)),
        network_calls=NETWORK_LOOP,
        run_counted=run_counted,
        training_cycle=training_cycle,
        training_step=training_step,
        compiled_memory=memory,
    )


def _training_loop(problem: Problem, field, options: dict, count_every: int):
    """(one bare step, `count_every` steps with one counted) of `pyode.train`'s stepper, Adam 1e-3."""
    import optax

    from ..train import OptaxStepper

    model, loss_fn, batch = _pyode_model(problem, field, dict(options, throw=False))
    stepper = OptaxStepper(model, loss_fn, optax.adam(1e-3))
    params, opt_state = stepper.init()

    def step():
        return stepper.step(params, opt_state, batch)

    def cycle():
        stepper.count(params, opt_state, batch)
        for _ in range(count_every):
            stepper.step(params, opt_state, batch)

    return step, cycle


def _pyode_model(problem: Problem, field, options: dict):
    """(model, loss_fn(model, batch) -> (loss, aux), batch): the spiral classifier as training builds it."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from .. import solve
    from ..models import NeuralODE, ODEClassifier, classifier_loss

    if problem.loss == "bce":
        t0, t1 = (float(t) for t in problem.ts)
        dim = problem.y0.shape[1]
        readout = eqx.nn.Linear(dim, 1, key=jax.random.PRNGKey(0))
        readout = eqx.tree_at(
            lambda r: (r.weight, r.bias),
            readout,
            (
                jnp.asarray(problem.readout_weight)[None, :],
                jnp.asarray([problem.readout_bias], problem.dtype),
            ),
        )
        model = ODEClassifier(NeuralODE(field, t0, t1, options), readout)
        return model, classifier_loss, (jnp.asarray(problem.y0), jnp.asarray(problem.labels))

    def mean_squared_error(field, batch):
        y0, ts, targets = batch
        solution = solve(field, y0, ts, **options)
        return jnp.mean((solution.ys[1:] - targets[1:]) ** 2), {"nfe_forward": solution.nfe_forward}

    batch = tuple(jnp.asarray(a) for a in (problem.y0, problem.ts, problem.targets))
    return field, mean_squared_error, batch


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


def _torch_step(
    problem: Problem, library: str, method: str, field, solve, adjoint: bool = False
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
        return recorded, (field.calls - recorded) if adjoint else recorded

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

    return TrainingStep(library, method, run, gradient, count, evaluate, evaluate_vjp)


def _torchdiffeq(problem: Problem, method: str) -> TrainingStep:
    import torch
    import torchdiffeq

    from ..reference import torch_field

    dtype = getattr(torch, problem.dtype)
    field = torch_field(problem.case()).to(dtype)
    adjoint = method.startswith("odeint_adjoint")
    odeint = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    options = {"method": problem.solver}
    if problem.steps is None:
        options.update(rtol=problem.rtol, atol=problem.atol)
    else:
        options["options"] = {"step_size": float(problem.ts[-1] - problem.ts[0]) / problem.steps}
    if method in SEMINORM:
        options["adjoint_options"] = {"norm": "seminorm"}

    def solve(y0, ts):
        ys = odeint(field, y0, ts, **options)
        return ys, field.calls

    return _torch_step(problem, "torchdiffeq", method, field, solve, adjoint)


def _torchode(problem: Problem, method: str) -> TrainingStep:
    """torchode's `AutoDiffAdjoint` (backpropagation through the solver), eager or under `torch.compile`
    (`pyode.reference.torchode_solver`). The compiled step is compiled here, by a first call (45-160 s
    on the 2-core development machine), and a compiler that fails makes it `MethodUnavailable`."""
    import torch

    from ..reference import torch_field, torchode_solver

    field = torch_field(problem.case()).to(getattr(torch, problem.dtype))
    compiled = method.endswith("-compiled")
    field.counting = not compiled  # NFE from torchode's statistics; a counter would recompile

    def build():
        torchode_solve = torchode_solver(field, problem.solver, problem.rtol, problem.atol, compiled=compiled)

        def solve(y0, ts):
            solution = torchode_solve(y0, ts)
            return solution.ys.transpose(0, 1), int(solution.stats["n_f_evals"].max())

        return _torch_step(problem, "torchode", method, field, solve)

    if not compiled:
        return build()
    try:
        step = build()
        step.run()
    except Exception as error:  # the compiler's failure, in one line
        lines = [line for line in str(error).splitlines() if line.strip()]
        reason = f"{type(error).__name__}: {lines[0] if lines else ''}"
        raise MethodUnavailable(f"torch.compile of torchode's solve failed: {reason}") from error
    return step


def _scratch(problem: Problem, method: str) -> TrainingStep:
    from ..reference import scratch_field
    from ..scratch import adjoint_gradients, unflatten_weights

    field = scratch_field(problem.case())
    loss = _numpy_loss(problem)
    tolerances = (
        {"rtol": problem.rtol, "atol": problem.atol} if problem.steps is None else {"steps": problem.steps}
    )

    def gradients():
        return adjoint_gradients(field, problem.y0, problem.ts, loss, method=problem.solver, **tolerances)

    def gradient():
        result = gradients()
        return result.loss, unflatten_weights(result.grad_theta, field.weights)

    def count():
        result = gradients()
        return result.nfe_forward, result.nfe_backward

    cotangent = np.ones_like(problem.y0)
    return TrainingStep(
        library="scratch",
        method=method,
        run=lambda: gradients().loss,
        gradient=gradient,
        count=count,
        evaluate=lambda: field(0.0, problem.y0),
        evaluate_vjp=lambda: field.vjp(0.0, problem.y0, cotangent),
    )


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
