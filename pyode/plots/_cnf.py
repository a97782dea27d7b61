"""Figures of the continuous-normalising-flow experiment: training, density beside the data, the flow."""

import os
from pathlib import Path

import numpy as np
from matplotlib.animation import FuncAnimation, PillowWriter

from ._style import draw_evaluation_counts, plt, save_figure

__all__ = ["cnf_density", "cnf_flow_animation", "cnf_training"]


def cnf_training(history: list[dict], path, *, title: str = "") -> None:
    """Batch negative log-likelihood (and RNODE's terms, if trained with them) and evaluations per step."""
    steps = np.array([r["step"] for r in history])
    fig, (ax_nll, ax_nfe) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"wspace": 0.45})
    ax_nll.plot(steps, [r["nll"] for r in history], lw=0.6, color="tab:blue")
    ax_nll.set_xlabel("step")
    ax_nll.set_ylabel("batch NLL (nats)", color="tab:blue")
    if "kinetic_energy" in history[0]:
        ax_terms = ax_nll.twinx()
        for name, colour in (("kinetic_energy", "tab:green"), ("jacobian_frobenius", "tab:purple")):
            ax_terms.semilogy(
                steps, [r[name] for r in history], lw=0.6, color=colour, label=name.replace("_", " ")
            )
        ax_terms.set_ylabel("regularisers (log)")
        ax_terms.legend(fontsize=8, loc="upper right")
    draw_evaluation_counts(ax_nfe, history)
    fig.suptitle(title)
    save_figure(fig, path)


def _square(ax, half: float) -> None:
    ax.set_xlim(-half, half)
    ax.set_ylim(-half, half)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def cnf_density(
    data: np.ndarray, edges: np.ndarray, log_p: np.ndarray, samples: np.ndarray, path, *, title=""
) -> None:
    """Three panels on one square: a histogram of the test points, the learnt density on the grid
    (cell centres; rows along the second coordinate) and samples carried from the base distribution."""
    half = float(edges[-1])
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 4.4))
    axes[0].hist2d(data[:, 0], data[:, 1], bins=120, range=[[-half, half]] * 2, cmap="viridis")
    axes[0].set_title(f"data ({len(data)} test points)")
    axes[1].pcolormesh(edges, edges, np.exp(log_p), cmap="viridis", shading="flat")
    axes[1].set_title("learnt density p(x)")
    axes[2].hist2d(samples[:, 0], samples[:, 1], bins=120, range=[[-half, half]] * 2, cmap="viridis")
    axes[2].set_title(f"samples ({len(samples)}, from the base)")
    for ax in axes:
        _square(ax, half)
    fig.suptitle(title)
    save_figure(fig, path)


def cnf_flow_animation(
    times: np.ndarray, states: np.ndarray, edges: np.ndarray, path, *, title="", fps=8
) -> None:
    """An animated GIF of base points (t1) carried by the learnt flow to the data (t = 0), one frame per
    saved time, held at the end."""
    path = Path(path)
    half = float(edges[-1])
    fig, ax = plt.subplots(figsize=(4.6, 4.8))
    colours = np.arctan2(states[0, :, 1], states[0, :, 0])
    hold = 6

    def draw(frame: int) -> None:
        index = min(frame, len(times) - 1)
        ax.clear()
        ax.scatter(*states[index].T, s=1.5, c=colours, cmap="twilight", alpha=0.6, linewidths=0)
        _square(ax, half)
        ax.set_title(
            f"{title}\nt = {times[index]:.2f} ({'base' if index == 0 else 'flowing to the data'})",
            fontsize=10,
        )

    animation = FuncAnimation(fig, draw, frames=len(times) + hold)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(".partial-" + path.name)
    animation.save(temporary, writer=PillowWriter(fps=fps), dpi=80)
    plt.close(fig)
    os.replace(temporary, path)
