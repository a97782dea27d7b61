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


def _add_command(commands, command) -> None:
    """A subcommand of the parser from its declaration (`pyode.experiments.Command`)."""
    parser = commands.add_parser(command.name, help=command.help, description=command.help)
    if command.settings:
        parser.add_argument("--settings", help=f"a JSON or YAML file: {command.settings}")
    if command.out:
        parser.add_argument("--out", required=True, help=command.out)
    for argument in command.arguments:
        parser.add_argument(*argument.flags, **argument.options)
    parser.set_defaults(handler=command.run)


def build_parser() -> argparse.ArgumentParser:
    """The `pyode` command: every experiment's declared commands (`pyode.experiments.DECLARATIONS`),
    then `defaults` and the pass-through `crossval` and `bench`."""
    from .experiments import DECLARATIONS, EXPERIMENTS, Command, argument

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
    for experiment in DECLARATIONS.values():
        for command in experiment.commands:
            _add_command(commands, command)
    for command in (
        Command(
            "defaults",
            defaults,
            "print an experiment's default settings (YAML)",
            (
                argument("experiment", choices=tuple(EXPERIMENTS)),
                argument("--system", help="dynamics: the system whose defaults to show"),
                argument("--task", help="sonode: the task whose defaults to show"),
            ),
        ),
        Command(
            "crossval",
            crossval,
            "cross-validation: make-case, run, summarise, sweep-summary (docs/crossval.md)",
            (argument("arguments", nargs=argparse.REMAINDER, help="arguments of `pyode crossval`"),),
        ),
        Command(
            "bench",
            bench,
            "benchmarks: steps, compile, length, size, plot (docs/bench.md)",
            (argument("arguments", nargs=argparse.REMAINDER, help="arguments of `pyode bench`"),),
        ),
    ):
        _add_command(commands, command)
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
