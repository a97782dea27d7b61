"""The claims figure: each claim's measured interval against its bound (pyode.experiments.claims)."""

import math
import textwrap

from ._style import plt, save_figure

__all__ = ["claims_figure"]

VERDICT_COLOURS = {"holds": "tab:green", "fails": "tab:red", "not run": "0.45"}
COLUMNS = 3
LOG_SPAN = 100.0
"""A condition whose positive values and bound span more than this factor is drawn on a log axis."""


def _interval(condition: dict) -> tuple[float, float]:
    """The measured interval of a condition's left metric: mean ± sd (the mean alone for one seed)."""
    sd = condition["sd"] or 0.0
    return condition["value"] - sd, condition["value"] + sd


def _limits(condition: dict) -> tuple[float, float, bool]:
    """x limits covering a condition's values, seeds and bound, and whether to draw it on a log axis."""
    points = [*_interval(condition), *condition["values"], condition["bound"]]
    if condition["op"] == "within":
        points += [condition["bound"] - condition["tolerance"], condition["bound"] + condition["tolerance"]]
    points = [p for p in points if math.isfinite(p)]
    if not points:
        return 0.0, 1.0, False
    low, high = min(points), max(points)
    if low > 0 and high / low > LOG_SPAN:
        return low / 3, high * 3, True
    pad = 0.2 * (high - low) or 0.1 * abs(high) or 1.0
    return low - pad, high + pad, False


def _condition(ax, condition: dict) -> None:
    """One condition: the side where it holds shaded, the bound, the seeds, mean ± sd and the mean."""
    low, high, log = _limits(condition)
    if log:
        ax.set_xscale("log")
    bound = condition["bound"]
    if condition["op"] == "within":
        start, end = bound - condition["tolerance"], bound + condition["tolerance"]
    else:
        start, end = (low, bound) if condition["op"] in ("<", "<=") else (bound, high)
    if math.isfinite(bound):
        ax.axvspan(max(start, low), min(end, high), color="tab:green", alpha=0.13, lw=0)
        ax.axvline(bound, color="k", lw=1)
    colour = VERDICT_COLOURS["holds" if condition["holds"] else "fails"]
    if condition["sd"]:
        ax.plot(_interval(condition), [0, 0], color=colour, lw=3, solid_capstyle="butt")
    ax.plot(condition["values"], [0] * len(condition["values"]), "|", color=colour, ms=9, alpha=0.6)
    ax.plot([condition["value"]], [0], "o", color=colour, ms=5)
    ax.set_xlim(low, high)
    ax.set_ylim(-1, 1)
    ax.set_yticks([])
    ax.set_title(condition["text"], fontsize=7, loc="left", pad=2)
    ax.tick_params(axis="x", labelsize=6.5, pad=1)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def _title(claim: dict) -> str:
    would = f" (would {claim['would'].removesuffix('s')})" if claim.get("would") else ""
    return f"{claim['id']}: {claim['verdict']}{would}"


def claims_figure(claims: list[dict], path, *, title: str = "Claims") -> None:
    """A block per claim whose metrics were read, one axis per condition: the mean over seeds (dot),
    mean ± sd (bar), each seed (ticks), the bound (black line) and the side where the condition holds
    (shaded); the block's title gives the verdict in its colour (green holds, red fails, grey not run).
    The claims with results absent here are named below."""
    drawn = [claim for claim in claims if claim["conditions"]]
    missing = [claim["id"] for claim in claims if not claim["conditions"]]
    rows = math.ceil(len(drawn) / COLUMNS)
    heights = [
        max(len(claim["conditions"]) for claim in drawn[r * COLUMNS : (r + 1) * COLUMNS]) + 0.9
        for r in range(rows)
    ]
    note = ", ".join(missing)
    note = (
        textwrap.fill(f"Not drawn (results absent here): {note}", 150, break_on_hyphens=False)
        if missing
        else ""
    )
    note_height = 0.2 * (note.count("\n") + 1) + 0.3 if note else 0.0
    fig = plt.figure(figsize=(5.2 * COLUMNS, 0.62 * sum(heights) + note_height + 0.7), layout="constrained")
    fig.suptitle(textwrap.fill(title, 170, break_on_hyphens=False), fontsize=10)
    if rows:
        grid = fig.subfigures(
            rows + bool(note), 1, height_ratios=[*heights, note_height * 1.6][: rows + bool(note)]
        )
        grid = [grid] if rows + bool(note) == 1 else list(grid)
        for r in range(rows):
            blocks = grid[r].subfigures(1, COLUMNS)
            for c, block in enumerate(blocks):
                index = r * COLUMNS + c
                if index >= len(drawn):
                    continue
                claim = drawn[index]
                block.suptitle(
                    _title(claim), fontsize=8, color=VERDICT_COLOURS[claim["verdict"]], x=0.02, ha="left"
                )
                axes = block.subplots(math.ceil(heights[r] - 0.9), 1, squeeze=False)[:, 0]
                for ax, condition in zip(axes, claim["conditions"]):
                    _condition(ax, condition)
                for ax in axes[len(claim["conditions"]) :]:  # the row's taller blocks set its height
                    ax.axis("off")
        if note:
            grid[-1].text(0.01, 0.5, note, fontsize=7.5, color=VERDICT_COLOURS["not run"], va="center")
    elif note:
        fig.text(0.01, 0.5, note, fontsize=7.5, color=VERDICT_COLOURS["not run"], va="center")
    save_figure(fig, path)
