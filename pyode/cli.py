"""The `pyode` command. Snakemake rules call its subcommands; each is a thin shell over an experiment.

Settings reach a command as a file (`--settings FILE`, JSON or YAML), overlaid on the
experiment's defaults (`pyode defaults EXPERIMENT` prints them). A user error (a bad setting,
a missing or corrupt file) ends in one line and exit status 2 (`--debug` shows the
traceback); a training run that diverges ends in one line and status 1; SIGINT and SIGTERM
end a run after its current step with its state saved, status 130 or 143.
"""

import argparse
import os
import signal
import sys

from ._errors import UserError


def bound_threads(threads: int) -> None:
    """Keep XLA, BLAS and PyTorch to `threads` CPU threads. Call before importing jax or torch."""
    if threads < 1:
        raise SystemExit(f"pyode: error: --threads must be at least 1, got {threads}")
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()


def _settings(args, experiment: str, *, stage: str = "run"):
    """The settings file of a command, resolved by its experiment (the data stage by `resolve_data`)."""
    from .experiments import EXPERIMENTS, load_settings

    module = EXPERIMENTS[experiment]
    return load_settings(module.resolve_data if stage == "data" else module.resolve, args.settings)


def classify_data(args) -> None:
    from .experiments import classify

    classify.make_data(_settings(args, "classify", stage="data"), args.out)


def classify_train(args) -> None:
    from .experiments import classify

    classify.train(args.data, _settings(args, "classify"), args.out, progress=not args.no_progress)


def classify_evaluate(args) -> None:
    from .experiments import classify

    record = classify.evaluate(args.run_dir, args.data, args.out or args.run_dir, run=args.run)
    _print_metrics(record)


def dynamics_data(args) -> None:
    from .experiments import dynamics

    dynamics.make_data(_settings(args, "dynamics", stage="data"), args.out)


def dynamics_train(args) -> None:
    from .experiments import dynamics

    dynamics.train(args.data, _settings(args, "dynamics"), args.out, progress=not args.no_progress)


def dynamics_evaluate(args) -> None:
    from .experiments import dynamics

    _print_metrics(dynamics.evaluate(args.data, args.runs, args.out))


def image_data(args) -> None:
    from .experiments import image

    print(image.make_data(_settings(args, "image", stage="data"), args.out))


def image_train(args) -> None:
    from .experiments import image

    _print_metrics(image.train(args.data, _settings(args, "image"), args.out, progress=not args.no_progress))


def image_summary(args) -> None:
    from .experiments import image, summary

    image.summarise(summary.load_records(args.metrics), args.out_dir, dataset=args.dataset)


def cnf_data(args) -> None:
    from .experiments import cnf

    cnf.make_data(_settings(args, "cnf", stage="data"), args.out)


def cnf_train(args) -> None:
    from .experiments import cnf

    cnf.train(args.data, _settings(args, "cnf"), args.out, progress=not args.no_progress)


def cnf_evaluate(args) -> None:
    from .experiments import cnf

    _print_metrics(cnf.evaluate(args.run_dir, args.data, args.out or args.run_dir, run=args.run))


def sde_data(args) -> None:
    from .experiments import sde

    sde.make_data(_settings(args, "sde", stage="data"), args.out)


def sde_train(args) -> None:
    from .experiments import sde

    sde.train(args.data, _settings(args, "sde"), args.out, progress=not args.no_progress)


def sde_evaluate(args) -> None:
    from .experiments import sde

    _print_metrics(sde.evaluate(args.run_dir, args.data, args.out or args.run_dir))


def sde_convergence(args) -> None:
    import jax

    from .experiments import load_settings, sde

    jax.config.update("jax_enable_x64", True)  # a solver against an exact solution: float64
    _print_metrics(sde.evaluate_convergence(load_settings(sde.resolve_convergence, args.settings), args.out))


def latent_data(args) -> None:
    from .experiments import latent

    latent.make_data(_settings(args, "latent", stage="data"), args.out)


def latent_train(args) -> None:
    from .experiments import latent

    latent.train(args.data, _settings(args, "latent"), args.out, progress=not args.no_progress)


def latent_evaluate(args) -> None:
    from .experiments import latent

    _print_metrics(latent.evaluate(args.data, args.runs, args.out))


def latent_summary(args) -> None:
    from .experiments import latent, summary

    latent.summarise(summary.load_records(args.metrics), args.out_dir)


def sonode_data(args) -> None:
    from .experiments import sonode

    sonode.make_data(_settings(args, "sonode", stage="data"), args.out)


def sonode_train(args) -> None:
    from .experiments import sonode

    sonode.train(args.data, _settings(args, "sonode"), args.out, progress=not args.no_progress)


def sonode_evaluate(args) -> None:
    from .experiments import sonode

    _print_metrics(sonode.evaluate(args.data, args.runs, args.out))


def regression(args) -> None:
    from .experiments import regression as experiment

    _print_metrics(experiment.run(_settings(args, "regression"), args.out, progress=not args.no_progress))


def summary(args) -> None:
    from . import read_json
    from .experiments import summary as experiment

    config = read_json(args.config) if args.config else None
    experiment.write_summary(args.metrics, args.out_csv, args.out_json, config=config)


def table(args) -> None:
    from .experiments import summary as experiment

    experiment.write_html_table(args.csv, args.out, title=args.title)


def compare(args) -> None:
    from .experiments import summary as experiment

    print(experiment.compare(args.results_a, args.results_b, resources=args.resources), end="")


def defaults(args) -> None:
    import yaml

    from .experiments import EXPERIMENTS

    changes = {"system": args.system} if args.system else {}
    if args.task:
        changes["task"] = args.task
    settings = EXPERIMENTS[args.experiment].resolve(changes)
    print(yaml.safe_dump(settings.to_dict(), sort_keys=False), end="")


def crossval(args) -> None:
    from .crossval import main as crossval_main

    crossval_main(args.arguments)


def bench(args) -> None:
    from .bench import main as bench_main

    bench_main(args.arguments)


def _print_metrics(record: dict) -> None:
    import json

    for entry in record["runs"]:
        print(json.dumps({"run": entry["run"], "status": record["status"], **entry["metrics"]}, indent=2))


def _command(commands, name: str, run, help: str, *, settings: str | None = None, out: str | None = None):
    command = commands.add_parser(name, help=help, description=help)
    if settings:
        command.add_argument("--settings", help=f"a JSON or YAML file: {settings}")
    if out:
        command.add_argument("--out", required=True, help=out)
    command.set_defaults(handler=run)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyode", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for XLA/BLAS (default: all)")
    parser.add_argument(
        "--compilation-cache",
        metavar="DIR",
        default=os.environ.get("PYODE_COMPILATION_CACHE"),
        help="keep JAX's compiled programs in DIR (default: $PYODE_COMPILATION_CACHE; the workflow sets it)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    commands = parser.add_subparsers(dest="command", required=True)
    experiment_settings = "changes to the defaults (`pyode defaults {}`)"

    command = _command(
        commands,
        "classify-data",
        classify_data,
        "generate a two-class data set and split it",
        settings=experiment_settings.format("classify"),
        out=".npz file to write",
    )
    command = _command(
        commands,
        "classify-train",
        classify_train,
        "train a (A)NODE classifier",
        settings=experiment_settings.format("classify"),
        out="run folder (model.npz, history.jsonl)",
    )
    command.add_argument("--data", required=True, help=".npz written by classify-data")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command = _command(
        commands, "classify-evaluate", classify_evaluate, "metrics and figures of a trained classifier"
    )
    command.add_argument("--run-dir", required=True, help="the folder classify-train wrote")
    command.add_argument("--data", required=True)
    command.add_argument("--run", required=True, help="the run's name, e.g. spiral/node")
    command.add_argument("--out", help="folder for metrics.json and the figures (default: the run folder)")

    _command(
        commands,
        "dynamics-data",
        dynamics_data,
        "noisy trajectories of a system, with the truth",
        settings=experiment_settings.format("dynamics"),
        out=".npz file to write",
    )
    command = _command(
        commands,
        "dynamics-train",
        dynamics_train,
        "fit a vector field to trajectory windows",
        settings=experiment_settings.format("dynamics"),
        out="run folder (model.npz, history.jsonl)",
    )
    command.add_argument("--data", required=True, help=".npz written by dynamics-data")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command = _command(
        commands,
        "dynamics-evaluate",
        dynamics_evaluate,
        "metrics and figures of a system's fits",
        out="folder for metrics.json and the figures",
    )
    command.add_argument("--data", required=True)
    command.add_argument("--runs", required=True, nargs="+", help="run folders written by dynamics-train")

    _command(
        commands,
        "image-data",
        image_data,
        "MNIST (under its data policy) or digits, as one .npz",
        settings=experiment_settings.format("image"),
        out=".npz file to write",
    )
    command = _command(
        commands,
        "image-train",
        image_train,
        "train an image ODE-Net or a baseline",
        settings=experiment_settings.format("image"),
        out="run folder (metrics.json, model.npz)",
    )
    command.add_argument("--data", required=True, help=".npz written by image-data")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command = _command(commands, "image-summary", image_summary, "table and figures of the image study")
    command.add_argument("metrics", nargs="+", help="metrics.json files of the runs")
    command.add_argument("--dataset", required=True)
    command.add_argument("--out-dir", required=True)

    _command(
        commands,
        "cnf-data",
        cnf_data,
        "draw training and test points of a density in the plane",
        settings=experiment_settings.format("cnf"),
        out=".npz file to write",
    )
    command = _command(
        commands,
        "cnf-train",
        cnf_train,
        "train a continuous normalising flow by maximum likelihood",
        settings=experiment_settings.format("cnf"),
        out="run folder (model.npz, history.jsonl)",
    )
    command.add_argument("--data", required=True, help=".npz written by cnf-data")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command = _command(commands, "cnf-evaluate", cnf_evaluate, "metrics and figures of a trained flow")
    command.add_argument("--run-dir", required=True, help="the folder cnf-train wrote")
    command.add_argument("--data", required=True)
    command.add_argument("--run", required=True, help="the run's name, e.g. 8gaussians/ffjord")
    command.add_argument("--out", help="folder for metrics.json and the figures (default: the run folder)")

    _command(
        commands,
        "sde-data",
        sde_data,
        "exact paths of a process with known drift and diffusion",
        settings=experiment_settings.format("sde"),
        out=".npz file to write",
    )
    command = _command(
        commands,
        "sde-train",
        sde_train,
        "fit a neural SDE by its Euler-Maruyama transition likelihood",
        settings=experiment_settings.format("sde"),
        out="run folder (model.npz, history.jsonl)",
    )
    command.add_argument("--data", required=True, help=".npz written by sde-data")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command = _command(commands, "sde-evaluate", sde_evaluate, "metrics and figures of a fitted neural SDE")
    command.add_argument("--run-dir", required=True, help="the folder sde-train wrote")
    command.add_argument("--data", required=True)
    command.add_argument("--out", help="folder for metrics.json and the figures (default: the run folder)")
    _command(
        commands,
        "sde-convergence",
        sde_convergence,
        "strong and weak orders of the SDE solvers on geometric Brownian motion (float64)",
        settings="changes to the convergence study's defaults (pyode.experiments.sde.ConvergenceSettings)",
        out="folder for metrics.json and convergence.png",
    )

    _command(
        commands,
        "latent-data",
        latent_data,
        "bi-directional spirals observed at irregular times",
        settings=experiment_settings.format("latent"),
        out=".npz file to write",
    )
    command = _command(
        commands,
        "latent-train",
        latent_train,
        "train a latent ODE or the RNN baseline on the spirals",
        settings=experiment_settings.format("latent"),
        out="run folder (model.npz, history.jsonl)",
    )
    command.add_argument("--data", required=True, help=".npz written by latent-data")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command = _command(
        commands,
        "latent-evaluate",
        latent_evaluate,
        "metrics and figures of the models trained on one observation count",
        out="folder for metrics.json and the figures",
    )
    command.add_argument("--data", required=True)
    command.add_argument("--runs", required=True, nargs="+", help="run folders written by latent-train")
    command = _command(
        commands, "latent-summary", latent_summary, "RMSE against the number of observations, and a table"
    )
    command.add_argument("metrics", nargs="+", help="metrics.json files written by latent-evaluate")
    command.add_argument("--out-dir", required=True)

    _command(
        commands,
        "sonode-data",
        sonode_data,
        "position-only series of a task (crossing, oscillator)",
        settings=experiment_settings.format("sonode"),
        out=".npz file to write",
    )
    command = _command(
        commands,
        "sonode-train",
        sonode_train,
        "train a NODE, ANODE or SONODE on a position-only task",
        settings=experiment_settings.format("sonode"),
        out="run folder (model.npz, history.jsonl)",
    )
    command.add_argument("--data", required=True, help=".npz written by sonode-data")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command = _command(
        commands,
        "sonode-evaluate",
        sonode_evaluate,
        "metrics and figures of a task's models",
        out="folder for metrics.json and the figures",
    )
    command.add_argument("--data", required=True)
    command.add_argument("--runs", required=True, nargs="+", help="run folders written by sonode-train")

    command = _command(
        commands,
        "regression",
        regression,
        "train the A-to-B regression with the NumPy adjoint",
        settings=experiment_settings.format("regression"),
        out="folder for metrics, history, figures",
    )
    command.add_argument("--no-progress", action="store_true", help="no progress bar")

    command = _command(
        commands, "summary", summary, "gather metrics.json files into one tidy table", out=None
    )
    command.add_argument("metrics", nargs="+")
    command.add_argument("--config", help="the workflow config, as a JSON file")
    command.add_argument("--out-csv", required=True)
    command.add_argument("--out-json", required=True)
    command = _command(
        commands, "table", table, "a CSV table as an HTML page (for the report)", out="the HTML file"
    )
    command.add_argument("csv", metavar="CSV")
    command.add_argument("--title", required=True, help="what the table shows")
    command = _command(commands, "compare", compare, "what differs between two result folders")
    command.add_argument("results_a", metavar="RESULTS_A")
    command.add_argument("results_b", metavar="RESULTS_B")
    command.add_argument("--resources", action="store_true", help="also compare time and memory (s, MiB)")
    command = _command(commands, "defaults", defaults, "print an experiment's default settings (YAML)")
    command.add_argument(
        "experiment",
        choices=("classify", "dynamics", "image", "regression", "cnf", "sde", "latent", "sonode"),
    )
    command.add_argument("--system", help="dynamics: the system whose defaults to show")
    command.add_argument("--task", help="sonode: the task whose defaults to show")

    command = _command(
        commands,
        "crossval",
        crossval,
        "cross-validation: make-case, run, summarise, sweep-summary (docs/crossval.md)",
    )
    command.add_argument("arguments", nargs=argparse.REMAINDER, help="arguments of `pyode crossval`")
    command = _command(
        commands, "bench", bench, "benchmarks: steps, compile, length, size, plot (docs/bench.md)"
    )
    command.add_argument("arguments", nargs=argparse.REMAINDER, help="arguments of `pyode bench`")
    return parser


def _stop_at_once(name: str):
    """A SIGINT/SIGTERM handler for the time outside training (whose loop saves its state first):
    one line, then exit 130 / 143 at once. Every file is written atomically, so nothing half-written
    is left. Raising KeyboardInterrupt instead could land in a garbage-collection callback, which
    swallows it and runs on (seen with JAX's `_xla_gc_callback`)."""

    def stop(signum, frame):
        print(f"{name}: interrupted by {signal.Signals(signum).name}", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    return stop


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    name = f"pyode {args.command}"
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop_at_once(name))
    if args.threads is not None:
        bound_threads(args.threads)
    if args.compilation_cache:
        from . import use_compilation_cache

        use_compilation_cache(args.compilation_cache)
    try:
        args.handler(args)
    except Exception as error:
        status = _exit_status(error)
        if status is None or args.debug:
            raise
        print(f"{name}: error: {error}", file=sys.stderr)
        raise SystemExit(status) from None


def _exit_status(error: Exception) -> int | None:
    """The exit status of an error the user can act on (None: a bug, shown with its traceback)."""
    from .train import TrainingDiverged, TrainingInterrupted

    if isinstance(error, TrainingInterrupted):
        return 128 + error.signum
    if isinstance(error, TrainingDiverged):
        return 1
    if isinstance(error, UserError):
        return 2
    if isinstance(error, (ValueError, FileNotFoundError, IsADirectoryError, PermissionError)):
        return 2  # the standard library's errors of a bad value or path given on the command line
    return None


if __name__ == "__main__":
    main()
