"""Shared figure handling: a headless backend and atomic saves."""

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CLASS_COLOURS = ("tab:blue", "tab:orange")


def save_figure(fig, path: str | Path) -> None:
    """Save `fig` to `path` (written to a temporary name first) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(".partial-" + path.name)
    fig.savefig(temporary, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    os.replace(temporary, path)
