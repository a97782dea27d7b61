"""What an experiment declares once: its `pyode` commands (docs/architecture.md, "Adding an experiment").

Each experiment module ends with `DECLARATION = Experiment(EXPERIMENT, commands=(...))`;
`pyode.experiments` discovers the modules and `pyode.cli` builds its subcommands from their
declarations. The helpers below make the usual data, train and evaluate commands. Nothing here
imports JAX: a command's function runs only when the command does.
"""

import argparse
import dataclasses
import json
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Argument:
    """One argument of a command, as argparse's `add_argument(*flags, **options)` takes it."""

    flags: tuple[str, ...]
    options: dict


def argument(*flags: str, **options) -> Argument:
    return Argument(flags, options)


@dataclasses.dataclass(frozen=True)
class Command:
    """A `pyode` subcommand: `run(args)` with the parsed arguments. `settings` and `out` are the help
    texts of its `--settings FILE` and required `--out` options (None: it has none)."""

    name: str
    run: Callable[[argparse.Namespace], None]
    help: str
    arguments: tuple[Argument, ...] = ()
    settings: str | None = None
    out: str | None = None


@dataclasses.dataclass(frozen=True)
class Experiment:
    """An experiment module's commands. `trains`: it plans runs from its config section (of its
    name) and trains and evaluates them; `summary` only gathers the others' results."""

    name: str
    commands: tuple[Command, ...]
    trains: bool = True


NO_PROGRESS = argument("--no-progress", action="store_true", help="no progress bar")


def defaults_help(experiment: str) -> str:
    """The help of a command's `--settings`: changes to the experiment's defaults."""
    return f"changes to the defaults (`pyode defaults {experiment}`)"


def print_metrics(record: dict) -> None:
    """Each run's metrics of a metrics.json record, as JSON."""
    for entry in record["runs"]:
        print(json.dumps({"run": entry["run"], "status": record["status"], **entry["metrics"]}, indent=2))


def settings_of(resolve: Callable, args: argparse.Namespace):
    """The settings a command's `--settings` file gives, resolved over the defaults by `resolve`."""
    from ._common import load_settings

    return load_settings(resolve, args.settings)


def data_command(
    experiment: str, make_data: Callable, resolve_data: Callable, help: str, *, show=None
) -> Command:
    """`EXPERIMENT-data --settings FILE --out FILE`: `make_data(settings, out)`; `show` prints its result."""

    def run(args):
        made = make_data(settings_of(resolve_data, args), args.out)
        if show:
            show(made)

    return Command(
        f"{experiment}-data", run, help, settings=defaults_help(experiment), out=".npz file to write"
    )


def train_command(
    experiment: str, train: Callable, resolve: Callable, help: str, *, out: str, show=None
) -> Command:
    """`EXPERIMENT-train --data FILE --settings FILE --out DIR [--no-progress]`:
    `train(data, settings, out, progress=...)`; `show` prints its result."""

    def run(args):
        trained = train(args.data, settings_of(resolve, args), args.out, progress=not args.no_progress)
        if show:
            show(trained)

    data = argument("--data", required=True, help=f".npz written by {experiment}-data")
    return Command(
        f"{experiment}-train", run, help, (data, NO_PROGRESS), settings=defaults_help(experiment), out=out
    )


def evaluate_run_command(experiment: str, evaluate: Callable, help: str, *, run_example: str | None = None):
    """`EXPERIMENT-evaluate --run-dir DIR --data FILE [--run NAME] [--out DIR]`: one trained run's
    `evaluate(run_dir, data, out, [run=...])`, its metrics printed. `run_example` adds `--run`."""

    def run(args):
        named = {"run": args.run} if run_example else {}
        print_metrics(evaluate(args.run_dir, args.data, args.out or args.run_dir, **named))

    arguments = (
        argument("--run-dir", required=True, help=f"the folder {experiment}-train wrote"),
        argument("--data", required=True),
        *(
            [argument("--run", required=True, help=f"the run's name, e.g. {run_example}")]
            if run_example
            else []
        ),
        argument("--out", help="folder for metrics.json and the figures (default: the run folder)"),
    )
    return Command(f"{experiment}-evaluate", run, help, arguments)


def evaluate_runs_command(experiment: str, evaluate: Callable, help: str) -> Command:
    """`EXPERIMENT-evaluate --data FILE --runs DIR... --out DIR`: `evaluate(data, runs, out)` of
    several trained runs, its metrics printed."""

    def run(args):
        print_metrics(evaluate(args.data, args.runs, args.out))

    arguments = (
        argument("--data", required=True),
        argument("--runs", required=True, nargs="+", help=f"run folders written by {experiment}-train"),
    )
    return Command(
        f"{experiment}-evaluate", run, help, arguments, out="folder for metrics.json and the figures"
    )
