"""Figures of the from-scratch regression run (`pyode.scratch.run_regression`)."""

from pathlib import Path

import numpy as np

from ._style import plt, save_figure

__all__ = ["plot_scratch_loss", "plot_scratch_trajectory"]


def plot_scratch_loss(
    steps: np.ndarray,
    loss: np.ndarray,
    nfe_forward: np.ndarray,
    nfe_backward: np.ndarray,
    path: str | Path,
) -> None:
    """Loss against training step (log scale), and the evaluations each step cost."""
    fig, (loss_axis, nfe_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    loss_axis.semilogy(steps, loss, color="C0")
    loss_axis.set_xlabel("training step")
    loss_axis.set_ylabel("loss")
    loss_axis.set_title("mean squared distance to the targets")
    nfe_axis.plot(steps, nfe_forward, label="forward", color="C1")
    nfe_axis.plot(steps, nfe_backward, label="backward", color="C2")
    nfe_axis.set_xlabel("training step")
    nfe_axis.set_ylabel("function evaluations")
    nfe_axis.set_title("cost per step")
    nfe_axis.legend()
    save_figure(fig, path)


def plot_scratch_trajectory(
    before: np.ndarray,
    after: np.ndarray,
    starts: np.ndarray,
    targets: np.ndarray,
    path: str | Path,
) -> None:
    """Planar trajectories (time, pair, 2) of the untrained and trained fields, from A to B."""
    fig, axis = plt.subplots(figsize=(5.5, 5))
    for pair in range(starts.shape[0]):
        axis.plot(before[:, pair, 0], before[:, pair, 1], color="0.6", linestyle="--", linewidth=1)
        axis.plot(after[:, pair, 0], after[:, pair, 1], color="C0", linewidth=1.5)
    axis.plot([], [], color="0.6", linestyle="--", label="before training")
    axis.plot([], [], color="C0", label="after training")
    axis.scatter(starts[:, 0], starts[:, 1], color="C2", marker="o", zorder=3, label="start A")
    axis.scatter(targets[:, 0], targets[:, 1], color="C3", marker="*", s=120, zorder=3, label="target B")
    axis.set_aspect("equal", adjustable="datalim")
    axis.set_xlabel("$z_1$")
    axis.set_ylabel("$z_2$")
    axis.legend(loc="best", fontsize="small")
    save_figure(fig, path)
