"""pyode itself (Diffrax): the implementation under test. Its field adapter, one cross-validation backend
per gradient method, and its library for the benchmarks (training step, work-precision solves)."""

from collections.abc import Callable
from importlib.metadata import version

import numpy as np

from ._base import AbstractBackend, BackendUnavailable, Result
from ._case import Case
from ._library import AbstractLibrary, PrecisionRunner, TrainingStep
from ._problem import Problem


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


NETWORK_LOOP = 32
"""pyode's network is timed as this many evaluations in one compiled loop (no dispatch per call)."""


class PyodeLibrary(AbstractLibrary):
    """pyode (Diffrax) in the benchmarks: the jitted training step, bare, counted and as `pyode.train` runs
    it; `pyode.solve` jitted once with the tolerances as arguments for the work-precision study."""

    name = "pyode"
    methods = ("checkpoint", "backsolve", "backsolve-seminorm")
    seminorm = ("backsolve-seminorm",)
    precision_note = (
        "pyode.solve (Diffrax), jitted once with the tolerances as arguments; interpolates at save times"
    )

    @property
    def precision_solvers(self) -> tuple[str, ...]:
        """pyode's adaptive solvers (the names of `pyode.SOLVERS`, read without importing Diffrax)."""
        from .. import FIXED_STEP_SOLVERS, SOLVER_NAMES

        return tuple(name for name in SOLVER_NAMES if name not in FIXED_STEP_SOLVERS)

    def field(self, case: Case, *, final: str | None = None):
        import equinox as eqx
        import jax.numpy as jnp

        field = pyode_field(case)
        if final is None:
            return field

        class FinalTanh(eqx.Module):
            field: eqx.Module

            def __call__(self, t, y):
                return jnp.tanh(self.field(t, y))

        return FinalTanh(field)

    def training_step(self, problem: Problem, method: str, *, count_every: int) -> TrainingStep:
        import equinox as eqx
        import jax
        import jax.numpy as jnp

        from .. import counting

        field = pyode_field(problem.case())
        options = {"solver": problem.solver, "adjoint": method, **problem.step_options()}

        def compiled_step(count_evaluations: bool):
            model, loss_fn, batch = _training_model(
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
            library=self.name,
            method=method,
            run=run,
            gradient=gradient,
            count=count,
            evaluate=lambda: jax.block_until_ready(evaluations(params, y)),
            evaluate_vjp=lambda: jax.block_until_ready(evaluations_vjp(params, y)),
            network_calls=NETWORK_LOOP,
            continuous=method in ("backsolve", "backsolve-seminorm"),
            run_counted=run_counted,
            training_cycle=training_cycle,
            training_step=training_step,
            compiled_memory=memory,
        )

    def precision_runner(
        self,
        case: Case,
        solver: str,
        *,
        final: str | None = None,
        max_steps: int,
        steps_at_save_times: bool = False,
    ) -> PrecisionRunner:
        """`pyode.solve` jitted once; `steps_at_save_times` ends a step at every save time (no
        interpolation). An implicit solver's NFE is counted as executed (Newton's JVPs included)."""
        import equinox as eqx
        import jax
        import jax.numpy as jnp

        from .. import SOLVERS, counting, solve, status_message

        field = self.field(case, final=final)
        y0, ts = jnp.asarray(case.y0), jnp.asarray(case.ts)
        implicit = SOLVERS[solver].implicit

        def make(count: bool):
            @eqx.filter_jit
            def run(field, y0, rtol, atol):
                solution = solve(
                    field,
                    y0,
                    ts,
                    solver=solver,
                    rtol=rtol,
                    atol=atol,
                    max_steps=max_steps,
                    steps_at_save_times=steps_at_save_times,
                    count_evaluations=count,
                    throw=False,
                )
                return solution.ys, solution.nfe_forward, solution.status

            return run

        bare, counted = make(False), make(True) if implicit else None

        def at(rtol: float, atol: float):
            tolerances = jnp.asarray(rtol, y0.dtype), jnp.asarray(atol, y0.dtype)

            def call():
                return jax.block_until_ready(bare(field, y0, *tolerances))

            def result():
                ys, nfe, status = call()
                if int(status):
                    raise RuntimeError(f"pyode {solver}: {status_message(int(status))}")
                if implicit:
                    with counting() as counts:
                        jax.block_until_ready(counted(field, y0, *tolerances))
                    nfe = counts.forward
                return np.asarray(ys), int(nfe)

            return result, call

        return at

    sde_methods = ("euler", "euler_heun", "heun", "midpoint", "milstein", "diffrax-milstein")
    """`pyode.SDE_SOLVERS` and `diffrax-milstein`: Diffrax's ItoMilstein on the batch's flattened state,
    as `pyode.solve_sde` ran Milstein before it took the Jacobian within each path (issue 28)."""

    def sde_batch(
        self, method: str, paths: int, *, steps: int, dtype: str, memory_limit: float
    ) -> tuple[Callable[[], object], int]:
        """(call, largest): sampling `paths` one-dimensional paths of a neural SDE (the sde experiment's
        networks at their default sizes) over [0, 1] in `steps` steps on one Virtual Brownian tree, by
        `method`, jitted; `call()` blocks until done. `largest` is the bytes of the largest array the
        program computes (read from its jaxpr); past `memory_limit` bytes it is not compiled
        (MethodUnavailable)."""
        import diffrax
        import jax
        import jax.numpy as jnp
        import lineax

        from .. import brownian_path, solve_sde
        from ..models import make_neural_sde
        from ._library import MethodUnavailable

        if method not in self.sde_methods:
            raise ValueError(
                f"pyode has no SDE method {method!r}; choose one of {', '.join(self.sde_methods)}"
            )
        model = make_neural_sde(1, key=jax.random.PRNGKey(0))
        model = jax.tree_util.tree_map(lambda a: a.astype(dtype) if _floating(a) else a, model)
        y0 = jnp.linspace(-1.0, 1.0, paths, dtype=dtype)[:, None]
        dt, ts = 1.0 / steps, np.array([0.0, 1.0], dtype)

        def sample(model, y0, key):
            path = brownian_path("virtual_tree", 0.0, 1.0, y0.shape, key=key, dt=dt, dtype=y0.dtype)
            if method != "diffrax-milstein":
                return solve_sde(model.drift, model.diffusion, y0, ts, brownian=path, dt=dt, solver=method).ys
            terms = diffrax.MultiTerm(
                diffrax.ODETerm(lambda t, y, _: model.drift(t, y.reshape(y0.shape)).reshape(-1)),
                diffrax.ControlTerm(
                    lambda t, y, _: lineax.DiagonalLinearOperator(
                        model.diffusion(t, y.reshape(y0.shape)).reshape(-1)
                    ),
                    path,
                ),
            )
            solution = diffrax.diffeqsolve(
                terms, diffrax.ItoMilstein(), 0.0, 1.0, dt, y0.reshape(-1), saveat=diffrax.SaveAt(t1=True)
            )
            return solution.ys.reshape((1,) + y0.shape)

        key = jax.random.PRNGKey(1)
        largest = _largest_array(jax.make_jaxpr(sample)(model, y0, key).jaxpr) * jnp.dtype(dtype).itemsize
        if largest > memory_limit:
            raise MethodUnavailable(
                f"its largest array would take {largest / 2**30:.3g} GiB "
                f"(limit {memory_limit / 2**30:.3g} GiB)"
            )
        compiled = jax.jit(sample)

        def call():
            return jax.block_until_ready(compiled(model, y0, key))

        return call, int(largest)


def _floating(value) -> bool:
    """A floating-point array (a model's weights), as opposed to its static fields."""
    return hasattr(value, "dtype") and np.issubdtype(value.dtype, np.floating)


def _largest_array(jaxpr) -> int:
    """The most elements of any value a jaxpr (and every jaxpr inside it) computes."""
    largest = 0
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            largest = max(largest, int(np.prod(getattr(var.aval, "shape", ()))))
        for param in eqn.params.values():
            for inner in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(inner, "jaxpr", inner)  # a closed jaxpr's
                if hasattr(inner, "eqns"):
                    largest = max(largest, _largest_array(inner))
    return largest


def _training_loop(problem: Problem, field, options: dict, count_every: int):
    """(one bare step, `count_every` steps with one counted) of `pyode.train`'s stepper, Adam 1e-3."""
    import optax

    from ..train import OptaxStepper

    model, loss_fn, batch = _training_model(problem, field, dict(options, throw=False))
    stepper = OptaxStepper(model, loss_fn, optax.adam(1e-3))
    params, opt_state = stepper.init()

    def step():
        return stepper.step(params, opt_state, batch)

    def cycle():
        stepper.count(params, opt_state, batch)
        for _ in range(count_every):
            stepper.step(params, opt_state, batch)

    return step, cycle


def _training_model(problem: Problem, field, options: dict):
    """(model, loss_fn(model, batch) -> (loss, aux), batch): the spiral classifier as training builds it,
    or the field under a mean squared error over the save times after the first."""
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
