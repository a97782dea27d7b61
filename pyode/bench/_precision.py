"""Work-precision: each library's error against a tight reference, against wall time and against NFE.

Every library solves the same forward problem (no gradients) in float64 at each rtol of a grid, with
atol = `atol_ratio` x rtol, and the error is the largest absolute difference from a reference
solution over every save time, batch entry and state component (the error torchode's benchmark
reports). The reference is SciPy's DOP853 at rtol = atol = `reference_tolerance` (1e-14; SciPy raises
an rtol below 100 machine epsilons, 2.2e-14, to that), integrated from save time to save time so that
every save time is the end of a step (no dense-output interpolation); pyode's dopri8 at the same
tolerance, stepping onto every save time, is solved beside it and their difference is recorded as
the floor below which errors say nothing.

Problems (`precision_problem`):

- `vdp`: Van der Pol with mu = 2 as in torchode's benchmark (martenlienen/torchode-paper,
  `results/vdp.py` and `results/run_vdp_benchmark.sh`: mu 2, batch 256, 200 save times over one
  period, dopri5): `batch` initial states on the limit cycle, spread evenly over half a period from
  the cycle's largest x, integrated over one period [0, T] with `times` save times;
- `neural_ode`: Diffrax's small neural ODE (patrick-kidger/diffrax, `benchmarks/small_neural_ode.py`):
  `eqx.nn.MLP(4 -> 32 -> 4, depth 1, softplus, final tanh, key PRNGKey(0))`, autonomous, batch 64 of
  `jax.random.normal(PRNGKey(1), (64, 4))`, t in [0, 100] with 100 save times (its `multiple=True`
  case; its solver dopri5 at rtol = atol = 1e-6); the weights made in float32 as there, then cast;
- `spiral`: the bench's spiral problem (`spiral_problem`): the classifier's initial field, one
  batch of the spiral data, over its [t0, t1].
"""

import sys
import time
import warnings

import numpy as np

from ._problems import spiral_problem
from ._timing import machine_info, measure

SCHEMA_VERSION = 1
PRECISION_PROBLEMS = ("vdp", "neural_ode", "spiral")
PRECISION_SOLVERS = {
    "torchdiffeq": ("dopri5", "dopri8", "bosh3"),
    "torchode": ("dopri5", "tsit5", "heun"),
    "scipy": ("RK23", "RK45", "DOP853"),
}
"""The solvers the work-precision study can run in each library besides pyode (its adaptive
`pyode.SOLVERS`) and scratch (its adaptive `pyode.scratch.TABLEAUS`)."""
ERROR_TARGETS = (1e-4, 1e-6, 1e-8)
"""The table's summary: each solver's fastest measured point whose error is at most each of these."""
MAX_STEPS = 100_000
ERROR = "max over save times, batch entries and state components of |y - y_reference|"


def library_solvers(library: str) -> tuple[str, ...]:
    """The solvers `library` offers to the work-precision study."""
    if library == "pyode":
        from .. import FIXED_STEP_SOLVERS, SOLVER_NAMES

        return tuple(name for name in SOLVER_NAMES if name not in FIXED_STEP_SOLVERS)
    if library == "scratch":
        from ..scratch import TABLEAUS

        return tuple(name for name, tableau in TABLEAUS.items() if tableau.b_error is not None)
    if library not in PRECISION_SOLVERS:
        raise ValueError(
            f"unknown library {library!r}; choose one of pyode, scratch, {', '.join(PRECISION_SOLVERS)}"
        )
    return PRECISION_SOLVERS[library]


def check_precision_solvers(solvers: dict) -> None:
    """Raise a ValueError naming the first solver a library does not offer."""
    for library, names in solvers.items():
        offered = library_solvers(library)
        for name in names:
            if name not in offered:
                raise ValueError(
                    f"{library} has no adaptive solver {name!r}; choose from {', '.join(offered)}"
                )


class PrecisionProblem:
    """A forward problem: a `pyode.reference.Case` (an `mlp` or `vdp` field, y0, save times), an
    optional activation applied to the field's output (`final`, Diffrax's benchmark's tanh), and
    a description for the results file."""

    def __init__(self, case, final: str | None, description: dict):
        if final not in (None, "tanh"):
            raise ValueError(f"unknown final activation {final!r}")
        self.case, self.final, self.description = case, final, description

    @property
    def name(self) -> str:
        return self.case.name

    def describe(self) -> dict:
        case = self.case
        return {
            "name": case.name,
            **self.description,
            "batch": case.batch,
            "dim": case.dim,
            "save_times": len(case.ts),
            "t_span": [float(case.ts[0]), float(case.ts[-1])],
            "dtype": "float64",
        }

    # Each library's field, built from the case by `pyode.reference`'s adapters.

    def pyode_field(self):
        import equinox as eqx
        import jax.numpy as jnp

        from ..reference import pyode_field

        field = pyode_field(self.case)
        if self.final is None:
            return field

        class FinalTanh(eqx.Module):
            field: eqx.Module

            def __call__(self, t, y):
                return jnp.tanh(self.field(t, y))

        return FinalTanh(field)

    def torch_field(self):
        """(the torch module, the `torch_field` module inside it that counts evaluations in `.calls`)."""
        import torch

        from ..reference import torch_field

        field = torch_field(self.case)
        if self.final is None:
            return field, field

        class FinalTanh(torch.nn.Module):
            def __init__(self, field):
                super().__init__()
                self.field = field

            def forward(self, t, y):
                return torch.tanh(self.field(t, y))

        return FinalTanh(field), field

    def numpy_field(self):
        from ..reference import scratch_field

        field = scratch_field(self.case)
        if self.final is None:
            return field
        return lambda t, y: np.tanh(field(t, y))


def _case(name: str, field: dict, params: dict, y0: np.ndarray, ts: np.ndarray, source: str):
    from ..reference import Case

    return Case(
        name=name,
        field=field,
        y0=np.asarray(y0, np.float64),
        ts=np.asarray(ts, np.float64),
        cotangent=np.zeros((len(ts),) + np.shape(y0)),
        params={k: np.asarray(v, np.float64) for k, v in params.items()},
        rtol=0.0,
        atol=0.0,
        solvers={"pyode": "dopri5", "torchdiffeq": "dopri5", "scipy": "DOP853"},
        source=source,
    )


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


def precision_problem(name: str, settings: dict) -> PrecisionProblem:
    """The work-precision problem `name` (vdp, neural_ode, spiral) from its settings (module doc)."""
    if name not in PRECISION_PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose one of {', '.join(PRECISION_PROBLEMS)}")
    options = settings[name]
    if name == "vdp":
        mu = float(options["mu"])
        y0, period = vdp_cycle(mu, options["batch"])
        ts = np.linspace(0.0, period, options["times"])
        case = _case("vdp", {"kind": "vdp"}, {"theta": [mu]}, y0, ts, "torchode's benchmark")
        description = {
            "mu": mu,
            "period": period,
            "source": "torchode's Van der Pol benchmark (martenlienen/torchode-paper results/vdp.py): "
            "initial states on the limit cycle, evenly over half a period from its largest x; one period",
        }
        return PrecisionProblem(case, None, description)
    if name == "neural_ode":
        import equinox as eqx
        import jax

        with jax.enable_x64(False):  # as Diffrax's benchmark makes them: float32
            mlp = eqx.nn.MLP(
                in_size=4,
                out_size=4,
                width_size=options["width"],
                depth=1,
                activation=jax.nn.softplus,
                final_activation=jax.nn.tanh,
                key=jax.random.PRNGKey(0),
            )
            y0 = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (options["batch"], 4)))
        params = {}
        for k, layer in enumerate(mlp.layers):
            params[f"weight_{k}"], params[f"bias_{k}"] = np.asarray(layer.weight), np.asarray(layer.bias)
        ts = np.linspace(0.0, float(options["t1"]), options["times"])
        field = {
            "kind": "mlp",
            "sizes": [4, options["width"], 4],
            "activation": "softplus",
            "time_input": False,
        }
        case = _case("neural_ode", field, params, y0, ts, "Diffrax's benchmarks/small_neural_ode.py")
        description = {
            "source": "Diffrax's small neural ODE (patrick-kidger/diffrax benchmarks/small_neural_ode.py): "
            "eqx.nn.MLP 4-32-4, softplus, final tanh, PRNGKey(0); y0 normal(PRNGKey(1)); multiple=True",
            "sizes": field["sizes"],
            "activation": "softplus, final tanh",
        }
        return PrecisionProblem(case, "tanh", description)
    problem = spiral_problem(options, dtype="float64")
    case = problem.case()
    description = {
        "source": "the bench's spiral problem: the classifier's initial field and one batch of its data",
        "sizes": problem.sizes,
        "activation": problem.activation,
        "time_input": problem.time_input,
    }
    return PrecisionProblem(case, None, description)


# A runner: (problem, solver) -> at(rtol, atol) -> (result, call): `result()` gives (ys (time, batch,
# dim), NFE) and raises on a failed solve; `call()` is the solve alone, blocking, for timing.


def _pyode_runner(problem: PrecisionProblem, solver: str, *, steps_at_save_times: bool = False):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from .. import SOLVERS, counting, solve, status_message

    field = problem.pyode_field()
    y0, ts = jnp.asarray(problem.case.y0), jnp.asarray(problem.case.ts)
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
                max_steps=MAX_STEPS,
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


def _torchdiffeq_runner(problem: PrecisionProblem, solver: str):
    import torch
    import torchdiffeq

    field, counter = problem.torch_field()
    y0, ts = torch.tensor(problem.case.y0), torch.tensor(problem.case.ts)

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


def _torchode_runner(problem: PrecisionProblem, solver: str):
    import torch

    from ..reference import torchode_solver

    field, _ = problem.torch_field()
    y0, ts = torch.tensor(problem.case.y0), torch.tensor(problem.case.ts)

    def at(rtol: float, atol: float):
        solve = torchode_solver(field, solver, rtol, atol, max_steps=MAX_STEPS)

        def call():
            with torch.no_grad():
                return solve(y0, ts)

        def result():
            solution = call()
            return solution.ys.transpose(0, 1).numpy().copy(), int(solution.stats["n_f_evals"].max())

        return result, call

    return at


def _scipy_runner(problem: PrecisionProblem, solver: str):
    from scipy.integrate import solve_ivp

    field, case = problem.numpy_field(), problem.case
    shape = case.y0.shape
    span = (float(case.ts[0]), float(case.ts[-1]))

    def f(t, y):
        return field(t, y.reshape(shape)).ravel()

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


def _scratch_runner(problem: PrecisionProblem, solver: str):
    from ..scratch import odeint

    field, case = problem.numpy_field(), problem.case

    def at(rtol: float, atol: float):
        def call():
            return odeint(field, case.y0, case.ts, method=solver, rtol=rtol, atol=atol, max_steps=MAX_STEPS)

        def result():
            solution = call()
            return solution.ys, int(solution.nfe)

        return result, call

    return at


RUNNERS = {
    "pyode": _pyode_runner,
    "torchdiffeq": _torchdiffeq_runner,
    "torchode": _torchode_runner,
    "scipy": _scipy_runner,
    "scratch": _scratch_runner,
}
NOTES = {
    "pyode": "pyode.solve (Diffrax), jitted once with the tolerances as arguments; interpolates at "
    "save times",
    "torchdiffeq": "torchdiffeq.odeint under torch.no_grad; interpolates at save times",
    "torchode": "torchode.AutoDiffAdjoint with its IntegralController, eager, under torch.no_grad; every "
    "sample its own step size and error norm (NFE: batched evaluations)",
    "scipy": "scipy.integrate.solve_ivp on the flattened batch (one system), NumPy field; t_eval by its "
    "dense output",
    "scratch": "pyode.scratch.odeint (NumPy); steps onto every save time (no interpolation)",
}


def reference_solution(
    problem: PrecisionProblem, tolerance: float, *, check: bool = True
) -> tuple[np.ndarray, dict]:
    """(ys (time, batch, dim), its description): SciPy's DOP853 from save time to save time at
    `tolerance`; with `check`, its largest difference from pyode's dopri8 stepping onto every save
    time at the same tolerance (`check_difference`, the floor below which errors say nothing)."""
    from scipy.integrate import solve_ivp

    field, case = problem.numpy_field(), problem.case
    shape = case.y0.shape

    def f(t, y):
        return field(t, y.reshape(shape)).ravel()

    tic = time.perf_counter()
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
    reference = np.stack(ys).reshape((len(case.ts),) + shape)
    seconds = time.perf_counter() - tic
    info = {
        "method": "scipy.integrate.solve_ivp(DOP853) from save time to save time (each save time a step's "
        f"end), rtol = atol = {tolerance:g} (SciPy raises rtol to at least 100 machine epsilons)",
        "tolerance": tolerance,
        "nfe": nfe,
        "seconds": seconds,
        "largest_state": float(np.max(np.abs(reference))),
    }
    if check:
        result, _ = _pyode_runner(problem, "dopri8", steps_at_save_times=True)(tolerance, tolerance)
        checked, _ = result()
        info["check"] = f"pyode dopri8, steps_at_save_times=True, rtol = atol = {tolerance:g}"
        info["check_difference"] = float(np.max(np.abs(checked - reference)))
    return reference, info


def work_precision(
    problem: PrecisionProblem,
    solvers: dict,
    rtols,
    *,
    atol_ratio: float = 1.0,
    reference_tolerance: float = 1e-14,
    repetitions: int = 5,
    warmup: int = 1,
    min_sample_seconds: float = 0.0,
    check_reference: bool = True,
) -> dict:
    """Error, median wall time and NFE of every (library, solver) of `solvers` at every rtol.

    A library that cannot be imported is `skipped`; a solve that fails is `failed` with its reason,
    and the tighter tolerances of that solver are then `skipped` (a looser one already failed).
    Timing: `measure` (median of `repetitions` samples after `warmup` calls, on the solve alone).
    """
    check_precision_solvers(solvers)
    rtols = sorted((float(r) for r in rtols), reverse=True)
    reference, reference_info = reference_solution(problem, reference_tolerance, check=check_reference)
    timing = {"repetitions": repetitions, "warmup": warmup, "min_sample_seconds": min_sample_seconds}
    points = []
    for library, names in solvers.items():
        for solver in names:
            base = {"library": library, "solver": solver, "name": f"{library}-{solver}"}
            try:
                runner = RUNNERS[library](problem, solver)
            except ImportError as error:
                reason = f"{type(error).__name__}: {error}"
                points += [
                    {**base, "rtol": r, "atol": atol_ratio * r, "status": "skipped", "reason": reason}
                    for r in rtols
                ]
                continue
            failed, started = None, time.perf_counter()
            for rtol in rtols:
                atol = atol_ratio * rtol
                point = {**base, "rtol": rtol, "atol": atol}
                if failed is not None:
                    points.append({**point, "status": "skipped", "reason": f"failed at rtol {failed:g}"})
                    continue
                try:
                    result, call = runner(rtol, atol)
                    ys, nfe = result()
                    if not np.all(np.isfinite(ys)):
                        raise RuntimeError("the solution is not finite")
                    timed_point = measure(call, **timing)
                except Exception as error:  # a failure is a point of the study
                    failed = rtol
                    lines = [line for line in str(error).splitlines() if line.strip()]
                    reason = f"{type(error).__name__}: {lines[0] if lines else ''}"
                    points.append({**point, "status": "failed", "reason": reason})
                    continue
                difference = np.abs(ys - reference)
                points.append(
                    {
                        **point,
                        "status": "ran",
                        "error": float(np.max(difference)),
                        "error_final": float(np.max(difference[-1])),
                        "seconds": timed_point.median,
                        "timing": timed_point.as_dict(),
                        "nfe": nfe,
                    }
                )
            ran = sum(p["name"] == base["name"] and p["status"] == "ran" for p in points)
            print(
                f"{problem.name}: {base['name']} ran at {ran} of {len(rtols)} tolerances "
                f"in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    return {
        "schema": SCHEMA_VERSION,
        "kind": "work_precision",
        "problem": problem.describe(),
        "rtols": rtols,
        "atol": f"atol = {atol_ratio:g} x rtol",
        "atol_ratio": atol_ratio,
        "error": ERROR,
        "reference": reference_info,
        "libraries": {library: NOTES[library] for library in solvers},
        "timing": timing,
        "machine": machine_info(),
        "points": points,
    }
