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
