"""Figures of the image ODE-Net study: test accuracy, NFE and time per epoch for every run."""

import numpy as np

from ._style import plt, save_figure

__all__ = ["image_accuracy", "image_nfe", "image_time"]

_ADJOINT_STYLE = {"checkpoint": "-", "backsolve": "--", "backsolve-seminorm": ":", "": "-."}
_COLOURS = {"euler": "tab:blue", "midpoint": "tab:cyan", "rk4": "tab:orange", "dopri5": "tab:green"}
_BASELINE_COLOURS = {"resnet": "tab:red", "noode": "tab:gray"}


def _label(run: dict) -> str:
    if not run.get("solver"):
        return run["model"]
    prefix = f"anode{run['augment']} " if run.get("augment") else ""
    return f"{prefix}{run['solver']}-{run['adjoint']}"


def _style(run: dict) -> dict:
    """Solver by colour, gradient method by dash, ANODE (augmented ODE blocks) by a square marker."""
    colour = _COLOURS.get(run.get("solver"), _BASELINE_COLOURS.get(run["model"], "tab:purple"))
    return {
        "color": colour,
        "linestyle": _ADJOINT_STYLE.get(run.get("adjoint", ""), "-"),
        "marker": "s" if run.get("augment") else "o",
        "markersize": 3,
        "label": _label(run),
    }


def _epochs(run: dict, key: str):
    """Epochs and a per-epoch value (NaN where an epoch has none, e.g. no counted step)."""
    values = [np.nan if e.get(key) is None else e[key] for e in run["per_epoch"]]
    return [e["epoch"] for e in run["per_epoch"]], values


def _empty_note(ax, runs) -> bool:
    if runs:
        return False
    ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
    return True


def image_accuracy(runs: list[dict], path, *, title: str = "") -> None:
    """Test accuracy against epoch, one line per run (solver by colour, gradient method by dash)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if not _empty_note(ax, runs):
        for run in runs:
            ax.plot(*_epochs(run, "test_accuracy"), **_style(run))
        ax.legend(fontsize=7, ncol=2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    save_figure(fig, path)


def image_nfe(runs: list[dict], path, *, title: str = "") -> None:
    """Mean forward and backward evaluations per training batch against epoch (ODE-Nets only)."""
    fig, (ax_forward, ax_backward) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    odenets = [run for run in runs if run.get("solver")]
    for ax, key, name in ((ax_forward, "nfe_forward", "forward"), (ax_backward, "nfe_backward", "backward")):
        if not _empty_note(ax, odenets):
            for run in odenets:
                ax.plot(*_epochs(run, key), **_style(run))
        ax.set_xlabel("epoch")
        ax.set_title(f"{name} NFE per batch")
    ax_forward.set_ylabel("function evaluations")
    if odenets:
        ax_backward.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    save_figure(fig, path)


def image_time(runs: list[dict], path, *, title: str = "") -> None:
    """Seconds per epoch: summed step times (first epoch with compilation) and the steady rate."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if not _empty_note(ax, runs):
        positions = np.arange(len(runs))
        ax.bar(positions - 0.2, [r["seconds_per_epoch"] for r in runs], 0.4, label="mean over epochs")
        ax.bar(
            positions + 0.2, [r["steady_seconds_per_epoch"] for r in runs], 0.4, label="steady (median step)"
        )
        ax.set_xticks(positions, [_label(r) for r in runs], rotation=40, ha="right", fontsize=8)
        ax.legend(fontsize=8)
    ax.set_ylabel("seconds per epoch")
    ax.set_title(title)
    save_figure(fig, path)
