"""Cross-validation figures: errors as the tolerance sweeps, and evaluation counts per backend."""

import numpy as np

from ._style import plt

__all__ = ["crossval_error_sweep", "crossval_nfe"]


def crossval_error_sweep(rows: list[dict], quantities: dict[str, str]):
    """Max relative error against rtol, one line per backend pair and a panel per quantity (log-log).

    `rows` are the sweep's pair errors (keys backend_a, backend_b, quantity, rtol, max_rel);
    `quantities` maps each quantity to its panel's title.
    The dashed black line is error = rtol; errors should fall with it toward round-off.
    Exact agreement (zero error, e.g. two gradient methods sharing one forward solve) is not drawn.
    """
    fig, axes = plt.subplots(1, len(quantities), figsize=(4.2 * len(quantities), 3.8), sharey=True)
    pairs = sorted({(r["backend_a"], r["backend_b"]) for r in rows})
    rtols = sorted({float(r["rtol"]) for r in rows})
    colours = plt.get_cmap("tab10").colors
    for ax, (name, title) in zip(axes, quantities.items(), strict=True):
        for i, (a, b) in enumerate(pairs):
            points = sorted(
                (float(r["rtol"]), float(r["max_rel"]))
                for r in rows
                if r["quantity"] == name
                and (r["backend_a"], r["backend_b"]) == (a, b)
                and float(r["max_rel"]) > 0
            )
            if points:
                x, y = zip(*points, strict=True)
                style = dict(
                    color=colours[i % 10], linestyle=("-", "--", ":")[i // 10 % 3], marker="os^"[i // 10 % 3]
                )
                ax.loglog(x, y, markersize=3, linewidth=1, label=f"{a} / {b}", **style)
        if rtols:
            ax.loglog(rtols, rtols, "k--", linewidth=0.8, label="error = rtol")
        ax.axhline(np.finfo(np.float64).eps, color="grey", linewidth=0.6, linestyle=":")
        ax.set_title(title)
        ax.set_xlabel("rtol (= atol)")
        ax.invert_xaxis()
    axes[0].set_ylabel("max relative error between backends")
    axes[-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


def crossval_nfe(rows: list[dict]):
    """Forward and backward evaluation counts per backend, grouped by case (backends that ran only)."""
    ran = [r for r in rows if r["status"] == "ran"]
    cases = sorted({r["case"] for r in ran})
    fig, axes = plt.subplots(1, max(len(cases), 1), figsize=(4.5 * max(len(cases), 1), 3.8), squeeze=False)
    for ax, case in zip(axes[0], cases, strict=False):
        here = [r for r in ran if r["case"] == case]
        x = np.arange(len(here))
        ax.bar(x - 0.2, [int(r["nfe_forward"]) for r in here], 0.4, label="forward")
        ax.bar(x + 0.2, [int(r["nfe_backward"]) for r in here], 0.4, label="backward")
        ax.set_xticks(x, [r["backend"] for r in here], rotation=60, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylim(bottom=1)
        ax.set_title(case)
    axes[0][0].set_ylabel("vector-field evaluations")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig
