"""`python -m pyode.reference BACKEND CASE OUT [OUT ...] [--tolerances R,R,...] [--julia MODE]`."""

import argparse
import sys

from ._base import BackendUnavailable
from ._registry import BACKENDS, run_backend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyode.reference", description=__doc__)
    parser.add_argument("backend", choices=list(BACKENDS))
    parser.add_argument("case", help="the case's .npz (its .json beside it)")
    parser.add_argument("out", nargs="+", help="result .npz files, one per tolerance")
    parser.add_argument("--tolerances", help="comma-separated rtol values (atol = rtol); default the case's")
    parser.add_argument("--julia", choices=("auto", "require", "off"), default="auto")
    args = parser.parse_args(argv)
    tolerances = None
    if args.tolerances:
        tolerances = [(float(v), float(v)) for v in args.tolerances.split(",")]
    try:
        results = run_backend(args.backend, args.case, args.out, tolerances=tolerances, julia=args.julia)
    except BackendUnavailable as error:
        raise SystemExit(f"{args.backend} was required but cannot run: {error}") from None
    for result in results:
        print(f"{args.backend}: {getattr(result, 'reason', None) or 'ran'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
