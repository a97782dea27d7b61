"""Comparing backends pairwise, the tolerance rule, and the summary tables."""

import csv
import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..reference import Result, Skipped

SAFETY = 1000.0
"""How far a global error may exceed the local tolerance (rtol * scale + atol) and still pass."""
ROUNDOFF = 1000 * np.finfo(np.float64).eps
"""A floor, relative to scale, below which no comparison of float64 results can be asked to go."""
QUANTITIES = ("trajectory", "grad_y0", "grad_theta")
QUANTITY_NAMES = {"trajectory": "trajectory", "grad_y0": "dL/dy0", "grad_theta": "dL/dtheta"}


def quantity(result: Result, name: str) -> np.ndarray:
    """One compared quantity of a result; `grad_theta` is every parameter gradient, flattened in order."""
    if name == "grad_theta":
        return np.concatenate([np.ravel(result.grad_params[k]) for k in sorted(result.grad_params)])
    return np.asarray(getattr(result, name))


def allowed_error(scale: float, rtol: float, atol: float) -> float:
    """The largest max-abs difference that passes: SAFETY (rtol scale + atol) + ROUNDOFF scale."""
    return SAFETY * (rtol * scale + atol) + ROUNDOFF * scale


@dataclass
class PairError:
    """How far two backends are apart on one quantity of one case."""

    case: str
    backend_a: str
    backend_b: str
    quantity: str
    rtol: float
    atol: float
    max_abs: float
    max_rel: float
    """max_abs over the larger max-abs value of the two (a norm-wise relative error)."""
    allowed: float
    passed: bool


def compare_pair(a: Result, b: Result, rtol: float, atol: float) -> list[PairError]:
    """Errors between two results of the same case, per quantity, against the tolerance rule."""
    rows = []
    for name in QUANTITIES:
        x, y = quantity(a, name), quantity(b, name)
        if x.shape != y.shape:
            raise ValueError(
                f"{a.backend} and {b.backend} disagree on the shape of {name}: {x.shape}, {y.shape}"
            )
        scale = float(max(np.max(np.abs(x)), np.max(np.abs(y)), np.finfo(np.float64).tiny))
        max_abs = float(np.max(np.abs(x - y)))
        allowed = allowed_error(scale, rtol, atol)
        rows.append(
            PairError(
                a.case,
                a.backend,
                b.backend,
                name,
                rtol,
                atol,
                max_abs,
                max_abs / scale,
                allowed,
                max_abs <= allowed,
            )
        )
    return rows


def compare_results(results: list[Result | Skipped]) -> list[PairError]:
    """Every pair of backends that ran the same case (and tolerance), compared.

    The looser of the two results' tolerances sets the allowed error.
    """
    ran = [r for r in results if isinstance(r, Result)]
    rows = []
    for a, b in itertools.combinations(ran, 2):
        if a.case == b.case and a.rtol == b.rtol:
            rows += compare_pair(a, b, max(a.rtol, b.rtol), max(a.atol, b.atol))
    return rows


def write_csv(path: str | Path, rows: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        if not rows:
            return
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def backend_rows(results: list[Result | Skipped]) -> list[dict]:
    """One row per (case, backend): ran or skipped, why, cost and method."""
    rows = []
    for r in results:
        if isinstance(r, Skipped):
            rows.append({"case": r.case, "backend": r.backend, "status": r.status, "reason": r.reason})
            continue
        rows.append(
            {
                "case": r.case,
                "backend": r.backend,
                "status": "ran",
                "reason": "",
                "nfe_forward": r.nfe_forward,
                "nfe_backward": r.nfe_backward,
                "wall_time_s": round(r.wall_time, 4),
                "method": r.method,
                "versions": " ".join(f"{k}={v}" for k, v in sorted(r.versions.items())),
            }
        )
    keys = [
        "case",
        "backend",
        "status",
        "reason",
        "nfe_forward",
        "nfe_backward",
        "wall_time_s",
        "method",
        "versions",
    ]
    return [{k: row.get(k, "") for k in keys} for row in rows]


def write_summary(results: list[Result | Skipped], out_dir: str | Path) -> list[PairError]:
    """summary.csv (pairs), backends.csv and summary.md in `out_dir`; returns the pair errors."""
    out_dir = Path(out_dir)
    pairs = compare_results(results)
    backends = backend_rows(results)
    write_csv(out_dir / "summary.csv", [asdict(p) for p in pairs])
    write_csv(out_dir / "backends.csv", backends)
    (out_dir / "summary.md").write_text(markdown_summary(pairs, backends))
    return pairs


def disagreeing_backends(pairs: list[PairError]) -> dict[str, list[str]]:
    """Per case, the fewest backends (chosen greedily) that every failing comparison involves."""
    found: dict[str, list[str]] = {}
    for case in sorted({p.case for p in pairs}):
        failing = {(p.backend_a, p.backend_b) for p in pairs if p.case == case and not p.passed}
        while failing:
            counts: dict[str, int] = {}
            for pair in failing:
                for backend in pair:
                    counts[backend] = counts.get(backend, 0) + 1
            worst = max(sorted(counts), key=counts.__getitem__)
            found.setdefault(case, []).append(worst)
            failing = {pair for pair in failing if worst not in pair}
    return found


def worst_errors(pairs: list[PairError]) -> list[str]:
    """Markdown lines: which backends disagree, and the largest relative error among the rest."""
    if not pairs:
        return ["No two backends ran the same case: nothing was compared."]
    lines = []
    outliers = disagreeing_backends(pairs)
    for case, backends in outliers.items():
        lines.append(
            f"- **{case}**: every failing comparison involves {', '.join(backends)}; "
            "the other backends agree with each other."
        )
    agreeing = [p for p in pairs if not {p.backend_a, p.backend_b} & set(outliers.get(p.case, ()))]
    lines += [
        "",
        "Worst relative error between two agreeing backends (max-abs difference over the larger max-abs):",
        "",
    ]
    for name in QUANTITIES:
        rows = [p for p in agreeing if p.quantity == name]
        if not rows:
            continue
        worst = max(rows, key=lambda p: p.max_rel)
        lines.append(
            f"- {QUANTITY_NAMES[name]}: {worst.max_rel:.1e} ({worst.case}, {worst.backend_a} against "
            f"{worst.backend_b}, rtol {worst.rtol:g})"
        )
    return lines


def markdown_summary(pairs: list[PairError], backends: list[dict]) -> str:
    """The summary as Markdown: which backends ran, which were skipped and why, then agreement."""
    ran = sorted({b["backend"] for b in backends if b["status"] == "ran"})
    lines = ["# Cross-validation", "", f"Backends that ran: {', '.join(ran) or 'none'}.", ""]
    for status, title in (("skipped", "Skipped: cannot run here"), ("failed", "Failed: broke on a case")):
        cases_by_reason: dict[tuple[str, str], list[str]] = {}
        for b in backends:
            if b["status"] == status:
                cases_by_reason.setdefault((b["backend"], b["reason"]), []).append(b["case"])
        if cases_by_reason:
            lines += [f"{title} (never counted as a pass):", ""]
            for (name, reason), cases in sorted(cases_by_reason.items()):
                lines.append(f"- **{name}** on {', '.join(sorted(cases))}: {reason}")
            lines.append("")
    failed = [p for p in pairs if not p.passed]
    lines += [
        f"{len(pairs) - len(failed)} of {len(pairs)} comparisons pass "
        f"(allowed max-abs error: {SAFETY:g} (rtol scale + atol) + {ROUNDOFF:.1e} scale; docs/crossval.md).",
        "",
        *worst_errors(pairs),
        "",
        "## Backends",
        "",
        "| case | backend | status | NFE fwd | NFE bwd | wall s | method |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in backends:
        detail = b["method"] if b["status"] == "ran" else b["reason"]
        lines.append(
            f"| {b['case']} | {b['backend']} | {b['status']} | {b['nfe_forward']} | {b['nfe_backward']} "
            f"| {b['wall_time_s']} | {detail} |"
        )
    lines += [
        "",
        "## Agreement (max relative error; pass against the rule)",
        "",
        "| case | backend a | backend b | rtol | trajectory | dL/dy0 | dL/dtheta | pass |",
        "|---|---|---|---|---|---|---|---|",
    ]
    grouped: dict[tuple, list[PairError]] = {}
    for p in pairs:
        grouped.setdefault((p.case, p.backend_a, p.backend_b, p.rtol), []).append(p)
    for (case, a, b, rtol), rows in grouped.items():
        errors = {r.quantity: f"{r.max_rel:.2e}" for r in rows}
        verdict = "yes" if all(r.passed for r in rows) else "**no**"
        lines.append(
            f"| {case} | {a} | {b} | {rtol:g} | {errors['trajectory']} | {errors['grad_y0']} "
            f"| {errors['grad_theta']} | {verdict} |"
        )
    return "\n".join(lines) + "\n"
