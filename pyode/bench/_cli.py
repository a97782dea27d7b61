"""`pyode bench SUBCOMMAND ...` (also `python -m pyode.bench`): what the workflow's bench rules call."""

import argparse
import json
from pathlib import Path

from ._libraries import METHODS

LIBRARIES = tuple(METHODS)


def _problems(path: str) -> dict:
    """The problems file: {"spiral": {...}, "sequence": {...}} (docs/bench.md)."""
    from .. import read_json

    value = read_json(path)
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a mapping of problem names to their settings")
    return value


def _write(result: dict, path: str) -> None:
    from .. import write_json

    write_json(path, result)


def _enable_x64(dtype: str) -> None:
    if dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)


def steps(args) -> None:
    from ._measure import training_steps
    from ._problems import make_problem

    _enable_x64(args.dtype)
    problems = _problems(args.problems)
    problem = make_problem(args.problem, dtype=args.dtype, settings=problems)
    result = training_steps(
        problem,
        args.libraries,
        repetitions=args.repetitions,
        warmup=args.warmup,
        min_sample_seconds=args.min_sample_seconds,
        methods=args.methods,
        count_every=problems[args.problem].get("count_every", 50),
    )
    _write(result, args.out)
    for entry in result["results"]:
        shown = (
            entry.get("reason") or f"{entry['step']['median'] * 1e3:.3f} ms, overhead {entry['overhead']:.2f}"
        )
        print(f"{args.problem} {args.dtype} {entry['name']}: {shown}")


def compile_time(args) -> None:
    from ._measure import compile_times

    options = {"name": args.problem, "dtype": args.dtype, "settings": _problems(args.problems)}
    result = compile_times(options, method=args.method, repetitions=args.repetitions)
    _write(result, args.out)
    print(json.dumps(result["summary"], indent=2))


def first_step(args) -> None:
    from ._measure import first_step as measure_first_step

    print(json.dumps(measure_first_step(json.loads(args.options), args.method, args.cache)))


def length(args) -> None:
    from ._measure import length_scaling

    result = length_scaling(
        args.steps,
        args.methods,
        dt=args.dt,
        repetitions=args.repetitions,
        warmup=args.warmup,
        spiral=_problems(args.problems)["spiral"],
    )
    _write(result, args.out)


def length_point(args) -> None:
    from ._measure import length_point as measure_point

    print(json.dumps(measure_point(json.loads(args.options))))


def size(args) -> None:
    from ._measure import size_scaling

    result = size_scaling(
        args.batches,
        args.widths,
        args.methods,
        repetitions=args.repetitions,
        warmup=args.warmup,
        min_sample_seconds=args.min_sample_seconds,
        spiral=_problems(args.problems)["spiral"],
    )
    _write(result, args.out)


def sde_batch(args) -> None:
    from ._measure import sde_batch_scaling

    _enable_x64(args.dtype)
    result = sde_batch_scaling(
        args.paths,
        args.methods,
        steps=args.steps,
        dtype=args.dtype,
        memory_limit=args.memory_limit_gib * 2**30,
        repetitions=args.repetitions,
        warmup=args.warmup,
        min_sample_seconds=args.min_sample_seconds,
    )
    _write(result, args.out)
    for point in result["points"]:
        shown = point.get("skipped") or (
            f"{point['step']['median'] * 1e3:.3g} ms per step, largest array "
            f"{point['largest_array_bytes'] / 2**20:.3g} MiB"
        )
        print(f"{point['method']} {point['paths']} paths: {shown}")


def norms(args) -> None:
    from ._measure import norm_study

    result = norm_study(args.case, args.tolerances)
    _write(result, args.out)
    for row in result["rows"]:
        print(
            f"{row['backend']} at {row['tolerance']:g}: {row['nfe_backward']} backward evaluations, "
            f"errors {row['grad_y0_error']:.1e} (dL/dy0), {row['grad_theta_error']:.1e} (dL/dtheta)"
        )


def precision(args) -> None:
    """One problem's work-precision points (JSON) and figure, from a settings file (docs/bench.md)."""
    from .. import read_json
    from ._precision import precision_problem, work_precision

    _enable_x64("float64")
    settings = read_json(args.settings)
    problem = precision_problem(settings["problem"], settings)
    result = work_precision(
        problem,
        settings["solvers"],
        settings["rtols"],
        atol_ratio=settings["atol_ratio"],
        reference_tolerance=settings["reference_tolerance"],
        repetitions=settings["repetitions"],
        warmup=settings["warmup"],
        min_sample_seconds=settings["min_sample_seconds"],
    )
    _write(result, args.out)
    if args.figure:
        from ..plots import bench_work_precision, save_figure

        save_figure(bench_work_precision(result), args.figure)
    for point in result["points"]:
        shown = point.get("reason") or (
            f"error {point['error']:.1e}, {point['seconds'] * 1e3:.3g} ms, NFE {point['nfe']}"
        )
        print(f"{settings['problem']} {point['name']} rtol {point['rtol']:g}: {shown}")


def precision_table(args) -> None:
    from .. import atomic_write, read_json
    from ..plots import work_precision_table
    from ._precision import ERROR_TARGETS

    results = [read_json(p) for p in args.results]
    atomic_write(args.out, work_precision_table(results, ERROR_TARGETS))


def plot(args) -> None:
    from .. import atomic_write, read_json
    from ..plots import (
        bench_counting,
        bench_length,
        bench_overhead,
        bench_size,
        bench_speedup,
        bench_table,
        save_figure,
    )

    loaded = [read_json(p) for p in args.results]
    kinds = {
        kind: [r for r in loaded if r["kind"] == kind]
        for kind in ("steps", "compile", "length", "size", "norms")
    }
    out = Path(args.out_dir)
    save_figure(bench_speedup(kinds["steps"]), out / "speedup.png")
    save_figure(bench_overhead(kinds["steps"]), out / "overhead.png")
    save_figure(bench_counting(kinds["steps"]), out / "counting.png")
    save_figure(bench_length(kinds["length"][0]), out / "length.png")
    save_figure(bench_size(kinds["size"][0]), out / "size.png")
    atomic_write(out / "summary.md", bench_table(kinds["steps"], kinds["compile"], kinds["norms"]))


def _add_common(p: argparse.ArgumentParser, *, sample: bool = True) -> None:
    p.add_argument("--repetitions", type=int, default=7, help="timed samples (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    if sample:
        p.add_argument(
            "--min-sample-seconds", type=float, default=0.05, help="repeat short calls within a sample"
        )
    p.add_argument("--problems", required=True, help="the problems file (JSON; docs/bench.md)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyode bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser(
        "steps", help="training-step time, NFE and overhead of every library on a problem"
    )
    p.add_argument("--problem", required=True, choices=("spiral", "sequence"))
    p.add_argument("--dtype", required=True, choices=("float32", "float64"))
    p.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    p.add_argument("--methods", nargs="+", help="only these, e.g. pyode-checkpoint torchdiffeq-odeint")
    p.add_argument("--out", required=True, help="results .json")
    _add_common(p)
    p.set_defaults(func=steps)

    p = commands.add_parser("compile", help="pyode's first training step, each in a fresh process")
    p.add_argument("--problem", default="spiral", choices=("spiral", "sequence"))
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--method", default="checkpoint")
    p.add_argument("--repetitions", type=int, default=5, help="fresh processes")
    p.add_argument("--problems", required=True, help="the problems file (JSON; docs/bench.md)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=compile_time)

    p = commands.add_parser("first-step", help="(internal) one first step in this process; prints JSON")
    p.add_argument("--options", required=True)
    p.add_argument("--method", default="checkpoint")
    p.add_argument("--cache", help="a JAX compilation cache folder to use")
    p.set_defaults(func=first_step)

    p = commands.add_parser("length", help="time and peak memory against the number of rk4 steps")
    p.add_argument("--steps", type=int, nargs="+", required=True)
    p.add_argument("--dt", type=float, default=0.0625, help="step size: t1 = steps * dt")
    p.add_argument("--methods", nargs="+", default=["pyode-checkpoint", "pyode-backsolve"])
    p.add_argument("--out", required=True)
    _add_common(p, sample=False)
    p.set_defaults(func=length)

    p = commands.add_parser("length-point", help="(internal) one point of `length`; prints JSON")
    p.add_argument("--options", required=True)
    p.set_defaults(func=length_point)

    p = commands.add_parser("size", help="step time against batch size and width")
    p.add_argument("--batches", type=int, nargs="+", required=True)
    p.add_argument("--widths", type=int, nargs="+", required=True)
    p.add_argument("--methods", nargs="+", default=["pyode-checkpoint", "torchdiffeq-odeint"])
    p.add_argument("--out", required=True)
    _add_common(p)
    p.set_defaults(func=size)

    p = commands.add_parser("sde-batch", help="neural-SDE batch sampling: time per step against paths")
    p.add_argument("--paths", type=int, nargs="+", required=True)
    p.add_argument("--methods", nargs="+", default=["euler", "milstein", "diffrax-milstein"])
    p.add_argument("--steps", type=int, default=64, help="steps over [0, 1]")
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    p.add_argument(
        "--memory-limit-gib", type=float, default=8.0, help="skip a point whose largest array is larger"
    )
    p.add_argument("--repetitions", type=int, default=7, help="timed samples (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    p.add_argument(
        "--min-sample-seconds", type=float, default=0.05, help="repeat short calls within a sample"
    )
    p.add_argument("--out", required=True, help="results .json")
    p.set_defaults(func=sde_batch)

    p = commands.add_parser("norms", help="backward evaluations and errors of the adjoints' error norms")
    p.add_argument("--case", required=True, help="a cross-validation case (.npz)")
    p.add_argument("--tolerances", type=float, nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=norms)

    p = commands.add_parser(
        "precision", help="work-precision: error against a tight reference, wall time and NFE per solver"
    )
    p.add_argument(
        "--settings",
        required=True,
        help='settings (JSON): {"problem": vdp|neural_ode|spiral, PROBLEM: {...}, "rtols", "atol_ratio", '
        '"reference_tolerance", "repetitions", "warmup", "min_sample_seconds", "solvers": {LIBRARY: [...]}}',
    )
    p.add_argument("--out", required=True, help="results .json")
    p.add_argument("--figure", help="the work-precision figure (.png)")
    p.set_defaults(func=precision)

    p = commands.add_parser("precision-table", help="work_precision.md from the work-precision results")
    p.add_argument("--results", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=precision_table)

    p = commands.add_parser("plot", help="figures and summary.md from the results files")
    p.add_argument("--results", nargs="+", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=plot)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run one `pyode bench` subcommand."""
    from ._measure import set_library_threads

    args = build_parser().parse_args(argv)
    if args.command not in ("plot", "precision-table"):
        set_library_threads()
    args.func(args)
