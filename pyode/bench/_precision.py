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

import numpy as np

from ..reference import Case, get_library, one_line, save_time_solution, vdp_cycle
from ._problems import spiral_problem
from ._timing import machine_info, measure

SCHEMA_VERSION = 1
PRECISION_PROBLEMS = ("vdp", "neural_ode", "spiral")
PRECISION_SOLVERS = {
    name: get_library(name).precision_solvers for name in ("torchdiffeq", "torchode", "scipy")
}
"""The solvers the work-precision study can run in each library besides pyode (its adaptive
`pyode.SOLVERS`) and scratch (its adaptive `pyode.scratch.TABLEAUS`)."""
ERROR_TARGETS = (1e-4, 1e-6, 1e-8)
"""The table's summary: each solver's fastest measured point whose error is at most each of these."""
MAX_STEPS = 100_000
ERROR = "max over save times, batch entries and state components of |y - y_reference|"


def library_solvers(library: str) -> tuple[str, ...]:
    """The solvers `library` offers to the work-precision study."""
    return get_library(library).precision_solvers


def check_precision_solvers(solvers: dict) -> None:
    """Raise a ValueError naming the first solver a library does not offer, or if no library has one."""
    if not any(solvers.values()):
        raise ValueError("every library's list is empty; name at least one solver")
    for library, names in solvers.items():
        offered = library_solvers(library)
        for name in names:
            if name not in offered:
                raise ValueError(
                    f"{library} has no adaptive solver {name!r}; choose from {', '.join(offered)}"
                )


def check_precision_tolerances(rtols, atol_ratio: float, reference_tolerance: float) -> None:
    """Raise a ValueError if a measured rtol or atol (`atol_ratio` x rtol) is not looser than the
    reference's: errors against a reference that is no more accurate than the solve say nothing."""
    if not rtols:
        raise ValueError("rtols is empty; give at least one tolerance")
    tightest = min(rtols)
    if tightest <= reference_tolerance:
        raise ValueError(
            f"rtols include {tightest:g}, which is not looser than reference_tolerance "
            f"({reference_tolerance:g}); every rtol must be greater than the reference's"
        )
    if atol_ratio * tightest <= reference_tolerance:
        raise ValueError(
            f"atol_ratio x rtols reach {atol_ratio * tightest:g} ({atol_ratio:g} x {tightest:g}), which is "
            f"not looser than reference_tolerance ({reference_tolerance:g}); every atol must be greater "
            "than the reference's"
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


def _case(name: str, field: dict, params: dict, y0: np.ndarray, ts: np.ndarray, source: str):
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


def reference_solution(
    problem: PrecisionProblem, tolerance: float, *, check: bool = True
) -> tuple[np.ndarray, dict]:
    """(ys (time, batch, dim), its description): SciPy's DOP853 from save time to save time at
    `tolerance`; with `check`, its largest difference from pyode's dopri8 stepping onto every save
    time at the same tolerance (`check_difference`, the floor below which errors say nothing)."""
    tic = time.perf_counter()
    reference, nfe = save_time_solution(problem.case, tolerance, final=problem.final)
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
        runner = get_library("pyode").precision_runner(
            problem.case, "dopri8", final=problem.final, max_steps=MAX_STEPS, steps_at_save_times=True
        )
        checked, _ = runner(tolerance, tolerance)[0]()
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
    check_precision_tolerances(rtols, atol_ratio, reference_tolerance)
    rtols = sorted((float(r) for r in rtols), reverse=True)
    reference, reference_info = reference_solution(problem, reference_tolerance, check=check_reference)
    timing = {"repetitions": repetitions, "warmup": warmup, "min_sample_seconds": min_sample_seconds}
    points = []
    for library, names in solvers.items():
        for solver in names:
            base = {"library": library, "solver": solver, "name": f"{library}-{solver}"}
            try:
                runner = get_library(library).precision_runner(
                    problem.case, solver, final=problem.final, max_steps=MAX_STEPS
                )
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
                    points.append({**point, "status": "failed", "reason": one_line(error)})
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
        "libraries": {library: get_library(library).precision_note for library in solvers},
        "timing": timing,
        "machine": machine_info(),
        "points": points,
    }
