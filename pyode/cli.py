"""The `pyode` command. Snakemake rules call its subcommands; each is a thin shell over the package."""

import argparse
import json
import os
import sys
from pathlib import Path


def bound_threads(threads: int) -> None:
    """Keep XLA, BLAS and PyTorch to `threads` CPU threads. Call before importing jax or torch."""
    if threads < 1:
        raise SystemExit(f"--threads must be at least 1, got {threads}")
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()


def _settings(text: str) -> dict:
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as error:
        raise SystemExit(f"--settings is not valid JSON: {error}") from None
    if not isinstance(settings, dict):
        raise SystemExit("--settings must be a JSON object")
    return settings


def classify_data(args) -> None:
    from .data import make_split

    settings = _settings(args.settings)
    make_split(args.dataset, **settings).save(args.out)


def classify_train(args) -> None:
    from ._classify import train_classifier

    train_classifier(args.data, _settings(args.settings), args.out, progress=not args.no_progress)


def classify_evaluate(args) -> None:
    from ._classify import evaluate_run

    metrics = evaluate_run(
        args.model, args.data, args.history, args.out, dataset=args.dataset, model_name=args.model_name
    )
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("settings", "versions")}, indent=2))


def scratch(args) -> None:
    from .scratch import run_regression

    metrics = run_regression(_settings(args.settings), Path(args.out))
    print(json.dumps(metrics, indent=2, default=str))


def crossval(args) -> None:
    from .crossval import main as crossval_main

    crossval_main(args.arguments)


def summary(args) -> None:
    from ._summary import write_summary

    write_summary(
        [Path(p) for p in args.metrics], Path(args.out_csv), Path(args.out_json), config=args.config
    )


def image_data(args) -> None:
    from ._image import write_image_data
    from .data import MNISTUnavailable

    try:
        print(write_image_data(args.dataset, _settings(args.settings), args.out))
    except MNISTUnavailable as error:
        raise SystemExit(f"pyode image-data: MNIST is required but unavailable: {error}") from None


def image_train(args) -> None:
    from ._image import train_image_classifier

    metrics = train_image_classifier(
        args.data, _settings(args.settings), args.out, progress=not args.no_progress
    )
    shown = {k: v for k, v in metrics.items() if k not in ("per_epoch", "settings", "versions")}
    print(json.dumps(shown, indent=2))


def image_summary(args) -> None:
    from ._image import summarise_image_runs

    summarise_image_runs(args.metrics, args.out_dir, dataset=args.dataset)


# Dynamics (issue 3): learning trajectories; pyode/_dynamics.py.


def dynamics_data(args) -> None:
    from ._dynamics import make_data

    make_data(args.system, _settings(args.settings)).save(args.out)


def dynamics_train(args) -> None:
    from ._dynamics import train_dynamics

    train_dynamics(args.data, _settings(args.settings), args.fit, args.out, progress=not args.no_progress)


def dynamics_evaluate(args) -> None:
    from ._dynamics import evaluate_dynamics

    metrics = evaluate_dynamics(args.data, args.runs, args.out)
    print(json.dumps(metrics["fits"], indent=2))


# Benchmarks (issue 7): pyode/bench/.


def bench(args) -> None:
    from .bench import main as bench_main

    bench_main(args.arguments)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyode", description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for XLA/BLAS (default: all)")
    commands = parser.add_subparsers(dest="command", required=True)

    command = commands.add_parser("classify-data", help="generate a two-class data set and split it")
    command.add_argument("--dataset", required=True, choices=["spiral", "circles"])
    command.add_argument("--settings", default="{}", help="JSON: generator options, test_fraction, seed")
    command.add_argument("--out", required=True, help=".npz file to write")
    command.set_defaults(run=classify_data)

    command = commands.add_parser("classify-train", help="train a (A)NODE classifier")
    command.add_argument("--data", required=True)
    command.add_argument("--settings", default="{}", help="JSON: seed, model, field, solve, train")
    command.add_argument("--out", required=True, help="run folder (model.eqx, history.jsonl)")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command.set_defaults(run=classify_train)

    command = commands.add_parser("classify-evaluate", help="metrics and figures of a trained classifier")
    command.add_argument("--model", required=True)
    command.add_argument("--data", required=True)
    command.add_argument("--history", required=True)
    command.add_argument("--dataset", required=True)
    command.add_argument("--model-name", required=True)
    command.add_argument("--out", required=True)
    command.set_defaults(run=classify_evaluate)

    command = commands.add_parser("scratch", help="train the A-to-B regression with the NumPy adjoint")
    command.add_argument("--settings", default="{}", help="JSON; see DEFAULT_REGRESSION_SETTINGS")
    command.add_argument("--out", required=True, help="folder for metrics, history and figures")
    command.set_defaults(run=scratch)

    command = commands.add_parser(
        "crossval", help="cross-validation: make-case, run, summarise, sweep-summary (see docs/crossval.md)"
    )
    command.add_argument("arguments", nargs=argparse.REMAINDER, help="arguments of `pyode crossval`")
    command.set_defaults(run=crossval)

    command = commands.add_parser("summary", help="gather metrics.json files into one table")
    command.add_argument("metrics", nargs="+")
    command.add_argument("--config", default=None, help="the resolved workflow config, as JSON")
    command.add_argument("--out-csv", required=True)
    command.add_argument("--out-json", required=True)
    command.set_defaults(run=summary)

    command = commands.add_parser("image-data", help="MNIST (under its data policy) or digits, as one .npz")
    command.add_argument("--dataset", required=True, choices=["digits", "mnist"])
    command.add_argument("--settings", default="{}", help="JSON: digits split or MNIST source")
    command.add_argument("--out", required=True, help=".npz file to write")
    command.set_defaults(run=image_data)

    command = commands.add_parser("image-train", help="train an image ODE-Net or a baseline")
    command.add_argument("--data", required=True, help=".npz written by image-data")
    command.add_argument("--settings", default="{}", help="JSON: seed, data, model, solve, train")
    command.add_argument("--out", required=True, help="run folder (metrics.json, history.jsonl, model.eqx)")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command.set_defaults(run=image_train)

    command = commands.add_parser("image-summary", help="table and figures of the image study")
    command.add_argument("metrics", nargs="+", help="metrics.json files of the runs")
    command.add_argument("--dataset", required=True)
    command.add_argument("--out-dir", required=True)
    command.set_defaults(run=image_summary)

    # Dynamics (issue 3)
    command = commands.add_parser("dynamics-data", help="noisy trajectories of a system, with the truth")
    command.add_argument("--system", required=True, help="vdp, linear_spiral, nn_spiral or regression_ab")
    command.add_argument("--settings", default="{}", help="JSON: seed and data options (see pyode._dynamics)")
    command.add_argument("--out", required=True, help=".npz file to write")
    command.set_defaults(run=dynamics_data)

    command = commands.add_parser("dynamics-train", help="fit a vector field to trajectory windows")
    command.add_argument("--data", required=True, help=".npz written by dynamics-data")
    command.add_argument("--fit", required=True, help="the name of a fit in the settings")
    command.add_argument("--settings", default="{}", help="JSON: seed, field, window, solve, train, fits")
    command.add_argument("--out", required=True, help="run folder (model.eqx, history.jsonl, snapshots.npz)")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command.set_defaults(run=dynamics_train)

    command = commands.add_parser("dynamics-evaluate", help="metrics and figures of a system's fits")
    command.add_argument("--data", required=True)
    command.add_argument("--runs", required=True, nargs="+", help="run folders written by dynamics-train")
    command.add_argument("--out", required=True, help="folder for metrics.json and the figures")
    command.set_defaults(run=dynamics_evaluate)

    # Benchmarks (issue 7)
    command = commands.add_parser(
        "bench", help="benchmarks: steps, compile, length, size, plot (see docs/bench.md)"
    )
    command.add_argument("arguments", nargs=argparse.REMAINDER, help="arguments of `pyode bench`")
    command.set_defaults(run=bench)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        bound_threads(args.threads)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"pyode {args.command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
