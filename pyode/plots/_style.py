"""Shared figure handling: a headless backend and atomic saves."""

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["save_figure"]

CLASS_COLOURS = ("tab:blue", "tab:orange")


def save_figure(fig, path: str | Path) -> None:
    """Save `fig` to `path` (written to a temporary name first) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(".partial-" + path.name)
    fig.savefig(temporary, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    os.replace(temporary, path)


def draw_evaluation_counts(ax, history: list[dict]) -> None:
    """Forward evaluations of every training step and backward ones of the counted steps, against step."""
    ax.plot([r["step"] for r in history], [r["nfe_forward"] for r in history], lw=0.8, label="forward")
    counted = [r for r in history if "nfe_backward" in r]
    ax.plot(
        [r["step"] for r in counted],
        [r["nfe_backward"] for r in counted],
        lw=0.8,
        ls="--",
        marker=".",
        markersize=3,
        label="backward (counted steps)",
    )
    ax.set_xlabel("step")
    ax.set_ylabel("function evaluations")
    ax.legend()
