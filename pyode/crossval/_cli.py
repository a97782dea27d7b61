"""`pyode crossval SUBCOMMAND ...` (also `python -m pyode.crossval`): what the workflow's rules call."""

import argparse
import csv
import sys
from dataclasses import asdict
from pathlib import Path


def make_case(args) -> None:
    from .. import read_json
    from ._cases import write_case

    settings = read_json(args.settings)
    write_case(
        settings["name"],
        settings["spec"],
        args.out,
        seed=settings["seed"],
        rtol=settings["rtol"],
        atol=settings["atol"],
    )


def run(args) -> None:
    from ..reference import BackendUnavailable, run_backend

    tolerances = [(float(v), float(v)) for v in args.tolerances.split(",")] if args.tolerances else None
    try:
        results = run_backend(args.backend, args.case, args.out, tolerances=tolerances, julia=args.julia)
    except BackendUnavailable as error:
        raise SystemExit(f"{args.backend} was required but cannot run: {error}") from None
    for result in results:
        print(f"{args.backend} on {Path(args.case).stem}: {getattr(result, 'reason', None) or 'ran'}")


def summarise(args) -> None:
    from ..plots import crossval_nfe, save_figure
    from ..reference import load_result
    from ._compare import write_summary

    results = [load_result(p) for p in args.results]
    pairs = write_summary(results, args.out_dir)
    with open(Path(args.out_dir) / "backends.csv") as f:
        save_figure(crossval_nfe(list(csv.DictReader(f))), args.nfe_figure)
    failed = [p for p in pairs if not p.passed]
    print(f"{len(pairs) - len(failed)} of {len(pairs)} comparisons pass")


def sweep_summary(args) -> None:
    from ..plots import crossval_error_sweep, save_figure
    from ..reference import load_result
    from ._compare import QUANTITY_NAMES, compare_results, write_csv

    rows = [asdict(p) for p in compare_results([load_result(p) for p in args.results])]
    write_csv(args.out_csv, rows)
    save_figure(crossval_error_sweep(rows, QUANTITY_NAMES), args.figure)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyode crossval", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("make-case", help="generate (or export) one case from its config entry")
    p.add_argument(
        "--settings", required=True, help="JSON file: name, spec (the case's config entry), seed, rtol, atol"
    )
    p.add_argument("--out", required=True, help="the case's .npz (its .json is written beside it)")
    p.set_defaults(func=make_case)

    p = commands.add_parser("run", help="run one backend on one case (each backend in its own process)")
    p.add_argument("--backend", required=True)
    p.add_argument("--case", required=True)
    p.add_argument("--out", nargs="+", required=True, help="result .npz files, one per tolerance")
    p.add_argument("--tolerances", help="comma-separated rtol values (atol = rtol); default the case's")
    p.add_argument("--julia", choices=("auto", "require", "off"), default="auto")
    p.set_defaults(func=run)

    p = commands.add_parser("summarise", help="compare every pair of backends; tables and the NFE figure")
    p.add_argument("--results", nargs="+", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--nfe-figure", required=True)
    p.set_defaults(func=summarise)

    p = commands.add_parser("sweep-summary", help="pair errors across the tolerance sweep, and its figure")
    p.add_argument("--results", nargs="+", required=True)
    p.add_argument("--out-csv", required=True)
    p.add_argument("--figure", required=True)
    p.set_defaults(func=sweep_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: `pyode crossval ...` passes the arguments after `crossval` here."""
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
