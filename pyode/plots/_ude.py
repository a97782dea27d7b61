"""Figures of the universal differential equation experiment: learnt terms, extrapolations, training."""

import numpy as np

from ._style import plt, save_figure

__all__ = ["ude_extrapolation", "ude_terms", "ude_training"]

STATE_NAMES = ("u (prey)", "v (predator)")
COLOURS = {"true": "0.2", "network": "tab:blue", "discovered (SINDy)": "tab:orange"}
OTHER_COLOURS = ("tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")


def ude_terms(ts: np.ndarray, terms: dict[str, np.ndarray], path, *, title="") -> None:
    """Each missing term (one panel per state) along a trajectory at times `ts`: `terms` maps a label
    ("true", "network", ...) to its values (T, 2)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), layout="constrained")
    for index, ax in enumerate(axes):
        for k, (label, values) in enumerate(terms.items()):
            colour = COLOURS.get(label, OTHER_COLOURS[k % len(OTHER_COLOURS)])
            style = {"lw": 2.4} if label == "true" else {"lw": 1.2, "ls": "--" if k > 1 else "-"}
            ax.plot(ts, values[:, index], color=colour, label=label, **style)
        ax.set_xlabel("t")
        ax.set_title(f"missing term of d{STATE_NAMES[index][0]}/dt", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def ude_extrapolation(
    ts: np.ndarray,
    clean: np.ndarray,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    paths: dict[str, np.ndarray],
    windows: dict[str, float],
    path,
    *,
    title="",
) -> None:
    """The true solution, the observations and each model's solution (label -> (T, 2)) over `ts`, one
    panel per state; the training and validation windows shaded (`windows`: name -> their end)."""
    fig, axes = plt.subplots(2, 1, figsize=(10.0, 6.0), layout="constrained", sharex=True)
    reach = 1.5 * np.nanmax(np.abs(clean), axis=0)
    for index, ax in enumerate(axes):
        ax.axvspan(0.0, windows["training"], color="0.9", lw=0)
        ax.axvspan(windows["training"], windows["validation"], color="0.95", lw=0)
        ax.plot(ts, clean[:, index], color="0.2", lw=2.4, label="truth")
        for k, (label, states) in enumerate(paths.items()):
            ax.plot(ts, states[:, index], lw=1.1, color=OTHER_COLOURS[k % len(OTHER_COLOURS)], label=label)
        ax.plot(*_column(train, index), "k.", ms=3, label="training data")
        ax.plot(*_column(validation, index), ".", color="0.5", ms=3, label="validation data")
        ax.set_ylim(-0.1 * reach[index], reach[index])
        ax.set_ylabel(STATE_NAMES[index])
    axes[-1].set_xlabel("t")
    axes[0].legend(fontsize=7, ncol=4)
    axes[0].set_title(title, fontsize=10)
    save_figure(fig, path)


def _column(observed: tuple[np.ndarray, np.ndarray], index: int):
    return observed[0], observed[1][:, index]


def ude_training(histories: dict[str, list[dict]], path, *, title="") -> None:
    """Each model's training loss against step (log scale), the L-BFGS steps drawn dashed."""
    fig, ax = plt.subplots(figsize=(7.5, 4.0), layout="constrained")
    for k, (label, history) in enumerate(histories.items()):
        colour = OTHER_COLOURS[k % len(OTHER_COLOURS)]
        steps = np.array([r["step"] for r in history])
        losses = np.array([r["loss"] for r in history])
        lbfgs = np.array([bool(r.get("lbfgs")) for r in history])
        ax.semilogy(steps[~lbfgs], losses[~lbfgs], color=colour, lw=0.9, label=f"{label}, Adam")
        if lbfgs.any():
            ax.semilogy(steps[lbfgs], losses[lbfgs], color=colour, lw=0.9, ls="--", label=f"{label}, L-BFGS")
    ax.set_xlabel("step")
    ax.set_ylabel("training MSE")
    ax.legend(fontsize=7)
    ax.set_title(title)
    save_figure(fig, path)
