"""The measurements: training steps across libraries, first-call compile time, scaling with length and size.

Every measurement returns a JSON-ready dict with the machine's description; the ones
that need a fresh process (compile time, peak memory) start one per point with
`python -m pyode.bench` and read its JSON from stdout.
"""

import json
import subprocess
import sys
import time

import numpy as np

from ..reference import MethodUnavailable, Problem, get_library
from ._libraries import applicable_methods, prepare
from ._problems import spiral_problem
from ._timing import machine_info, measure, peak_rss_bytes

SCHEMA_VERSION = 1
SPEEDUP_PAIRS = (
    ("pyode-checkpoint", "torchdiffeq-odeint"),
    ("pyode-backsolve", "torchdiffeq-odeint_adjoint"),
    ("pyode-backsolve-seminorm", "torchdiffeq-odeint_adjoint-seminorm"),
    ("pyode-checkpoint", "torchdiffeq-odeint_adjoint"),
    ("pyode-checkpoint", "torchode-autodiff"),
    ("pyode-checkpoint", "torchode-autodiff-compiled"),
    ("pyode-checkpoint", "scratch-adjoint"),
)
"""(pyode, other): speed-ups reported as other's median step time over pyode's; like for like first."""


def set_library_threads() -> None:
    """Give every library the same CPU threads as JAX (`pyode --threads N`, else every core)."""
    from ..reference import LIBRARIES
    from ._timing import threads

    for library in LIBRARIES.values():
        library.set_threads(threads())


def _skipped(library: str, method: str, error: Exception) -> dict:
    return {
        "library": library,
        "method": method,
        "name": f"{library}-{method}",
        "status": "skipped",
        "reason": f"{type(error).__name__}: {error}",
    }


def training_steps(
    problem: Problem,
    libraries,
    *,
    repetitions: int,
    warmup: int,
    min_sample_seconds: float,
    methods=None,
    count_every: int = 50,
) -> dict:
    """Step time, evaluation counts and solver overhead of every applicable method of `libraries`.

    `methods` (names such as `pyode-checkpoint`) keeps only those. The network alone is
    timed once per library (it is the same network for each of its methods).
    """
    timing = {"repetitions": repetitions, "warmup": warmup, "min_sample_seconds": min_sample_seconds}
    results, networks = [], {}
    for library, method in applicable_methods(problem, libraries):
        if methods is not None and f"{library}-{method}" not in methods:
            continue
        try:
            step = prepare(problem, library, method, count_every=count_every)
        except (ImportError, MethodUnavailable) as error:
            results.append(_skipped(library, method, error))
            continue
        loss = step.run()
        nfe_forward, nfe_backward = step.count()
        timed = measure(step.run, **timing)
        if library not in networks:
            networks[library] = (
                measure(step.evaluate, per_call=step.network_calls, **timing),
                measure(step.evaluate_vjp, per_call=step.network_calls, **timing),
            )
        evaluate, evaluate_vjp = networks[library]
        network = network_seconds(
            step.continuous, nfe_forward, nfe_backward, evaluate.median, evaluate_vjp.median
        )
        entry = {
            "library": library,
            "method": method,
            "name": step.name,
            "status": "ran",
            "loss": loss,
            "nfe_forward": nfe_forward,
            "nfe_backward": nfe_backward,
            "step": timed.as_dict(),
            "evaluate": evaluate.as_dict(),
            "evaluate_vjp": evaluate_vjp.as_dict(),
            "network_seconds": network,
            "overhead": timed.median / network,
        }
        if step.run_counted is not None:
            entry["step_counted"] = measure(step.run_counted, **timing).as_dict()
        if step.training_step is not None:
            bare = measure(step.training_step, **timing)
            cycle = measure(step.training_cycle, per_call=count_every, **timing)
            entry["training_loop"] = {
                "count_every": count_every,
                "bare_step": bare.as_dict(),
                "step_with_counting": cycle.as_dict(),
                "counting_cost": cycle.median / bare.median,
                "counting_cost_cpu": cycle.cpu_median / bare.cpu_median,
            }
        results.append(entry)
    return {
        "schema": SCHEMA_VERSION,
        "kind": "steps",
        "problem": problem.describe(),
        "timing": timing,
        "machine": machine_info(),
        "results": results,
        "speedups": speedups(results),
    }


def network_seconds(
    continuous: bool, nfe_forward: int, nfe_backward: int, evaluate: float, evaluate_vjp: float
):
    """The time the network alone needs for a step's evaluations.

    Each backward evaluation is a VJP with the evaluation it needs (`evaluate_vjp`). A
    continuous adjoint also makes `nfe_forward` plain evaluations in its forward solve;
    backpropagation through the solver reuses its forward evaluations in the VJPs, so only
    those beyond the backward count are added.
    """
    plain = nfe_forward if continuous else max(0, nfe_forward - nfe_backward)
    return nfe_backward * evaluate_vjp + plain * evaluate


def speedups(results: list[dict]) -> list[dict]:
    """Other's median step time over pyode's, for each pair of SPEEDUP_PAIRS that both ran."""
    ran = {r["name"]: r for r in results if r["status"] == "ran"}
    return [
        {"pyode": a, "other": b, "speedup": ran[b]["step"]["median"] / ran[a]["step"]["median"]}
        for a, b in SPEEDUP_PAIRS
        if a in ran and b in ran
    ]


def _child(arguments: list[str]) -> dict:
    """Run `python -m pyode.bench ARGUMENTS` in a fresh process and read the JSON it prints last."""
    done = subprocess.run(
        [sys.executable, "-m", "pyode.bench", *arguments], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"pyode.bench {' '.join(arguments)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_step(problem_options: dict, method: str, cache: str | None = None) -> dict:
    """In this (fresh) process: seconds to import, to build, and for the first and second pyode steps.

    With `cache`, JAX's persistent compilation cache in that folder is used (a warm one skips
    compilation; tracing and lowering remain).
    """
    tic, cpu = time.perf_counter(), time.process_time()
    import jax

    if cache:
        from .. import use_compilation_cache

        use_compilation_cache(cache)
    imported, imported_cpu = time.perf_counter(), time.process_time()
    if problem_options["dtype"] == "float64":
        jax.config.update("jax_enable_x64", True)
    from ._problems import make_problem

    step = prepare(make_problem(**problem_options), "pyode", method)
    built, built_cpu = time.perf_counter(), time.process_time()
    step.run()
    first, first_cpu = time.perf_counter(), time.process_time()
    step.run()
    second = time.perf_counter()
    return {
        "import_seconds": imported - tic,
        "build_seconds": built - imported,
        "first_step_seconds": first - built,
        "first_step_cpu_seconds": first_cpu - built_cpu,
        "second_step_seconds": second - first,
        "compile_seconds": (first - built) - (second - first),
        "import_cpu_seconds": imported_cpu - cpu,
    }


def compile_times(problem_options: dict, *, method: str, repetitions: int) -> dict:
    """pyode's first training step (tracing and compilation included), each in a fresh process:
    without a compilation cache (`runs`), and with a warm one (`warm_runs`: a first process fills it)."""
    import tempfile

    arguments = ["first-step", "--options", json.dumps(problem_options), "--method", method]
    runs = [_child(arguments) for _ in range(repetitions)]
    with tempfile.TemporaryDirectory() as cache:
        _child([*arguments, "--cache", cache])
        warm_runs = [_child([*arguments, "--cache", cache]) for _ in range(repetitions)]

    def summarise(runs):
        summary = {}
        for key in runs[0]:
            values = sorted(r[key] for r in runs)
            summary[key] = {"median": values[len(values) // 2], "minimum": values[0], "maximum": values[-1]}
        return summary

    return {
        "schema": SCHEMA_VERSION,
        "kind": "compile",
        "problem": problem_options["name"],
        "dtype": problem_options["dtype"],
        "method": f"pyode-{method}",
        "runs": runs,
        "summary": summarise(runs),
        "warm_runs": warm_runs,
        "warm_summary": summarise(warm_runs),
        "machine": machine_info(),
    }


def length_point(options: dict) -> dict:
    """In this (fresh) process: step time, peak memory and NFE of one method at one number of rk4 steps.

    The peak is read before the counted run (whose compilation would add to it).
    """
    steps = options["steps"]
    problem = spiral_problem(options["spiral"], steps=steps, t1=steps * options["dt"], dtype="float32")
    step = prepare(problem, options["library"], options["method"])
    baseline = peak_rss_bytes()
    timed = measure(step.run, repetitions=options["repetitions"], warmup=options["warmup"])
    peak = peak_rss_bytes()
    nfe_forward, nfe_backward = step.count()
    point = {
        "library": options["library"],
        "method": options["method"],
        "name": step.name,
        "steps": steps,
        "step": timed.as_dict(),
        "nfe_forward": nfe_forward,
        "nfe_backward": nfe_backward,
        "rss_baseline_bytes": baseline,
        "rss_peak_bytes": peak,
    }
    if step.compiled_memory is not None:
        point["xla_memory"] = step.compiled_memory()
    return point


def length_scaling(steps_list, methods, *, dt: float, repetitions: int, warmup: int, spiral: dict) -> dict:
    """Time and peak memory against the number of rk4 steps (t1 = steps * dt), one fresh process a point."""
    points = []
    for steps in steps_list:
        for name in methods:
            library, method = name.split("-", 1)
            options = {
                "library": library,
                "method": method,
                "steps": steps,
                "dt": dt,
                "repetitions": repetitions,
                "warmup": warmup,
                "spiral": spiral,
            }
            points.append(_child(["length-point", "--options", json.dumps(options)]))
    return {
        "schema": SCHEMA_VERSION,
        "kind": "length",
        "dt": dt,
        "memory": "rss: getrusage peak resident memory of a fresh process per point (baseline: after the "
        "imports and set-up, before the first step, so compilation is in the peak); xla_memory: XLA's "
        "memory analysis of pyode's compiled step (temp_size_in_bytes: its working memory)",
        "points": points,
        "machine": machine_info(),
    }


def size_scaling(
    batches,
    widths,
    methods,
    *,
    repetitions: int,
    warmup: int,
    min_sample_seconds: float,
    spiral: dict,
) -> dict:
    """Step time and evaluation counts against batch size (default width) and width (default batch)."""
    defaults = spiral_problem(spiral)
    grid = [("batch", b, {"batch": b}) for b in batches] + [("width", w, {"width": w}) for w in widths]
    points = []
    for axis, value, change in grid:
        problem = spiral_problem(spiral, dtype="float32", **change)
        for name in methods:
            library, method = name.split("-", 1)
            step = prepare(problem, library, method)
            nfe_forward, nfe_backward = step.count()
            timed = measure(
                step.run, repetitions=repetitions, warmup=warmup, min_sample_seconds=min_sample_seconds
            )
            points.append(
                {
                    "axis": axis,
                    "value": value,
                    "name": step.name,
                    "nfe_forward": nfe_forward,
                    "nfe_backward": nfe_backward,
                    "step": timed.as_dict(),
                }
            )
    return {
        "schema": SCHEMA_VERSION,
        "kind": "size",
        "default_batch": defaults.batch,
        "default_width": defaults.width,
        "points": points,
        "machine": machine_info(),
    }


NORM_BACKENDS = (
    "pyode-backsolve-rms",
    "pyode-backsolve",
    "pyode-backsolve-seminorm",
    "torchdiffeq-adjoint",
    "torchdiffeq-adjoint-seminorm",
)
"""The continuous adjoints whose backward error norms differ: Diffrax's RMS over every part, the largest
part's RMS (pyode's backsolve, torchdiffeq's default) and the seminorms that leave the parameters out."""


def norm_study(case_path, tolerances, *, reference_tolerance: float = 1e-12) -> dict:
    """Backward evaluations and gradient errors of the continuous adjoints under each error norm, on one
    cross-validation case (float64), against pyode's checkpointed gradients at `reference_tolerance`."""
    from ..reference import get_backend, load_case

    case = load_case(case_path)
    reference = get_backend("pyode-checkpoint").prepare(case)(reference_tolerance, reference_tolerance)

    def relative(a, b):
        return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))

    rows = []
    for name in NORM_BACKENDS:
        once = get_backend(name).prepare(case)
        for tolerance in tolerances:
            result = once(tolerance, tolerance)
            rows.append(
                {
                    "backend": name,
                    "tolerance": tolerance,
                    "nfe_backward": result.nfe_backward,
                    "grad_y0_error": relative(result.grad_y0, reference.grad_y0),
                    "grad_theta_error": relative(
                        np.concatenate([np.ravel(result.grad_params[k]) for k in sorted(result.grad_params)]),
                        np.concatenate(
                            [np.ravel(reference.grad_params[k]) for k in sorted(reference.grad_params)]
                        ),
                    ),
                }
            )
    return {
        "schema": SCHEMA_VERSION,
        "kind": "norms",
        "case": case.name,
        "parameters": int(sum(np.size(v) for v in case.params.values())),
        "state": list(case.y0.shape),
        "reference": f"pyode-checkpoint at rtol = atol = {reference_tolerance:g}",
        "rows": rows,
        "machine": machine_info(),
    }


def sde_batch_scaling(
    paths_list,
    methods,
    *,
    steps: int,
    dtype: str,
    memory_limit: float,
    repetitions: int,
    warmup: int,
    min_sample_seconds: float,
) -> dict:
    """Seconds per step of sampling a batch of neural-SDE paths against the number of paths, per method
    (pyode's SDE solvers, and Diffrax's ItoMilstein on the flattened batch); a point whose program's
    largest array passes `memory_limit` bytes is skipped with that size (issue 28, item 5)."""
    library = get_library("pyode")
    points = []
    for method in methods:
        for paths in paths_list:
            point = {"method": method, "paths": paths, "steps": steps}
            try:
                call, largest = library.sde_batch(
                    method, paths, steps=steps, dtype=dtype, memory_limit=memory_limit
                )
            except MethodUnavailable as error:
                points.append({**point, "skipped": str(error)})
                continue
            tic = time.perf_counter()
            call()
            first = time.perf_counter() - tic
            timed = measure(
                call,
                repetitions=repetitions,
                warmup=warmup,
                min_sample_seconds=min_sample_seconds,
                per_call=steps,
            )
            points.append(
                {**point, "largest_array_bytes": largest, "first_call": first, "step": timed.as_dict()}
            )
    return {
        "schema": SCHEMA_VERSION,
        "kind": "sde_batch",
        "dtype": dtype,
        "model": "pyode.models.make_neural_sde(1) (the sde experiment's networks), one Virtual Brownian tree",
        "points": points,
        "machine": machine_info(),
    }
