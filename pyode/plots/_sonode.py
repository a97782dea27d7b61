"""Figures of the second-order experiment: the crossing task's flows, the oscillator's fits."""

import numpy as np

from ._style import plt, save_figure

__all__ = ["sonode_flows", "sonode_trajectories"]

COLOURS = {"NODE": "tab:orange", "ANODE": "tab:green", "SONODE": "tab:blue"}
TRAJECTORIES_SHOWN = 3


def sonode_flows(ts: np.ndarray, x0: np.ndarray, curves: dict[str, tuple], path) -> None:
    """The crossing task: each model's x(t) from evenly spaced x0 (top), its map x0 -> x(t1) against
    the target -x0 (middle), and its path in state space where the state has a second
    coordinate (bottom: ANODE's augmented one, SONODE's velocity).

    `curves` maps a model's label to (positions (N, T, 1), states (N, T, state)) at `ts`.
    """
    labels = list(curves)
    fig, axes = plt.subplots(
        3, len(labels), figsize=(3.8 * len(labels), 10), squeeze=False, layout="constrained"
    )
    colours = plt.cm.coolwarm((x0 - x0.min()) / max(np.ptp(x0), 1e-12))
    for column, label in enumerate(labels):
        positions, states = curves[label]
        top, middle, bottom = axes[:, column]
        for i in range(len(x0)):
            top.plot(ts, positions[i, :, 0], color=colours[i], lw=1)
        top.set_title(label)
        top.set_xlabel("t")
        top.set_ylabel("x(t)")
        middle.plot([-1, 1], [1, -1], color="0.5", ls="--", lw=1, label="target g(x) = -x")
        middle.scatter(x0, positions[:, -1, 0], c=colours, s=14, zorder=3, label="x(t1)")
        middle.set_xlabel("x0")
        middle.set_ylabel("x(t1)")
        middle.legend(fontsize=7)
        if states.shape[-1] > 1:
            for i in range(len(x0)):
                bottom.plot(states[i, :, 0], states[i, :, 1], color=colours[i], lw=1)
            bottom.set_xlabel("x")
            bottom.set_ylabel("velocity v" if label == "SONODE" else "augmented dimension")
        else:
            bottom.axis("off")
            bottom.text(0.5, 0.5, "state = x only:\ntrajectories cannot cross", ha="center", va="center")
    fig.suptitle("g(x) = -x: trajectories must cross (colour: x0)")
    save_figure(fig, path)


def sonode_trajectories(data, ts: np.ndarray, curves: dict[str, tuple], path) -> None:
    """The oscillator: observed positions, the truth and each model's run over the observed interval
    and past it (shaded), for the first training series."""
    shown = min(TRAJECTORIES_SHOWN, len(data.initial))
    fig, axes = plt.subplots(shown, 1, figsize=(10, 2.8 * shown), squeeze=False, layout="constrained")
    all_ts = data.all_ts
    for i in range(shown):
        ax = axes[i, 0]
        ax.axvspan(data.ts[-1], all_ts[-1], color="0.93", label="extrapolation")
        truth = np.concatenate([data.truth[i, :, 0], data.extrapolation_truth[i, :, 0]])
        ax.plot(all_ts, truth, color="0.55", lw=3, label="truth")
        ax.scatter(data.ts, data.observed[i, :, 0], s=8, color="0.4", zorder=3, label="observed positions")
        for label, (positions, _) in curves.items():
            ax.plot(ts, positions[i, :, 0], color=COLOURS.get(label), lw=1.2, label=label)
        ax.set_ylabel("x")
    axes[-1, 0].set_xlabel("t")
    axes[0, 0].legend(fontsize=7, ncol=3)
    fig.suptitle("Damped oscillator observed in position only")
    save_figure(fig, path)
