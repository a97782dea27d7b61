"""Figures of the dynamics experiment: loss, trajectories, vector fields, snapshots, animation."""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.animation import FuncAnimation, PillowWriter

from ._style import plt, save_figure

__all__ = [
    "dynamics_animation",
    "dynamics_fields",
    "dynamics_loss",
    "dynamics_snapshots",
    "dynamics_trajectories",
]

FIT_COLOURS = ("tab:red", "tab:green", "tab:purple", "tab:brown")
MAX_TRAJECTORIES_SHOWN = 4
SNAPSHOTS_IN_STRIP = 6


def _colour(index: int) -> str:
    return FIT_COLOURS[index % len(FIT_COLOURS)]


def dynamics_loss(histories: dict[str, list[dict]], noise: float, path, *, title: str = "") -> None:
    """Batch RMSE of every fit against step (log scale), with the noise level and three times it."""
    fig, (ax_rmse, ax_nfe) = plt.subplots(1, 2, figsize=(10, 3.6))
    for index, (name, history) in enumerate(histories.items()):
        steps = [r["step"] for r in history]
        ax_rmse.semilogy(steps, [r["rmse"] for r in history], lw=0.7, color=_colour(index), label=name)
        ax_nfe.plot(steps, [r["nfe_forward"] for r in history], lw=0.7, color=_colour(index), label=name)
    if noise > 0:
        ax_rmse.axhline(noise, color="0.3", ls=":", lw=1, label="noise")
        ax_rmse.axhline(3 * noise, color="0.3", ls="--", lw=1, label="3 x noise")
    ax_rmse.set_xlabel("step")
    ax_rmse.set_ylabel("window RMSE of the batch (log)")
    ax_rmse.legend(fontsize=8)
    ax_nfe.set_xlabel("step")
    ax_nfe.set_ylabel("forward evaluations (batch max)")
    ax_nfe.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(fig, path)


def dynamics_trajectories(data, runs: dict[str, tuple], path, *, title: str = "") -> None:
    """True against learned trajectories in time and in the phase plane, extrapolation shaded.

    `runs` maps a fit name to its free run (on the training interval, on the extrapolation
    window), as `pyode._dynamics.free_run` returns; a fit may cover fewer trajectories.
    """
    shown = min(len(data.ts), MAX_TRAJECTORIES_SHOWN)
    fig, axes = plt.subplots(shown, 2, figsize=(12, 3.2 * shown), squeeze=False, width_ratios=(2.2, 1))
    for i in range(shown):
        ax_time, ax_phase = axes[i]
        times = np.concatenate([data.ts[i], data.extrapolation_ts[i]])
        truth = np.concatenate([data.ys_true[i], data.extrapolation_ys_true[i]])
        ax_time.axvspan(data.ts[i, -1], times[-1], color="0.92", label="extrapolation")
        for k, marker in ((0, "o"), (1, "s")):
            ax_time.scatter(data.ts[i], data.ys[i, :, k], s=5, color="0.45", marker=marker, zorder=2)
            ax_time.plot(times, truth[:, k], color="k", lw=1.0, label="truth" if k == 0 else None)
        ax_phase.scatter(*data.ys[i].T, s=4, color="0.45", label="observations")
        ax_phase.plot(*truth.T, color="k", lw=1.0, label="truth")
        for index, (name, (on_interval, later)) in enumerate(runs.items()):
            if i >= len(on_interval):
                continue
            learned = np.concatenate([on_interval[i], later[i]])
            for k, style in ((0, "-"), (1, "--")):
                label = f"{name} (x1 -, x2 --)" if k == 0 else None
                ax_time.plot(times, learned[:, k], color=_colour(index), lw=1.0, ls=style, label=label)
            ax_phase.plot(*learned.T, color=_colour(index), lw=1.0, label=name)
        ax_time.set_xlabel("t")
        ax_time.set_ylabel(f"trajectory {i}")
        ax_phase.set_xlabel("x1")
        ax_phase.set_ylabel("x2")
        ax_phase.set_aspect("equal", adjustable="datalim")
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[0, 1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{title}: true and learned trajectories from the true initial states")
    save_figure(fig, path)


def _plane(data, margin: float = 0.3, resolution: int = 25):
    points = np.concatenate([data.ys.reshape(-1, 2), data.extrapolation_ys_true.reshape(-1, 2)])
    low, high = points.min(axis=0) - margin, points.max(axis=0) + margin
    return np.meshgrid(np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution))


def _stream(ax, gx, gy, velocity, title: str) -> None:
    speed = np.hypot(velocity[:, 0], velocity[:, 1]).reshape(gx.shape)
    ax.streamplot(
        gx,
        gy,
        velocity[:, 0].reshape(gx.shape),
        velocity[:, 1].reshape(gx.shape),
        color=speed,
        cmap="viridis",
        density=1.0,
        linewidth=0.7,
    )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("x1")
    ax.set_aspect("equal")


def _learned_velocity(field, grid: np.ndarray) -> np.ndarray:
    return np.asarray(jax.jit(lambda f, g: f(0.0, g))(field, jnp.asarray(grid, dtype=jnp.float32)))


def dynamics_fields(data, fields: dict, path, *, title: str = "") -> None:
    """Phase portraits side by side: the true vector field, then each learned one, with the observations."""
    gx, gy = _plane(data)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    panels = [("true field", data.true_field()(grid))]
    panels += [(f"learned: {name}", _learned_velocity(field, grid)) for name, field in fields.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 4.4), squeeze=False)
    for ax, (name, velocity) in zip(axes[0], panels):
        _stream(ax, gx, gy, velocity, name)
        ax.scatter(*data.ys.reshape(-1, 2).T, s=2, color="tab:red", alpha=0.5)
    axes[0, 0].set_ylabel("x2")
    fig.suptitle(f"{title}: vector fields (colour: speed; red: observations)")
    save_figure(fig, path)


def _draw_snapshot(ax, data, on_interval, later, colour: str) -> None:
    ax.scatter(*data.ys[: len(on_interval)].reshape(-1, 2).T, s=2, color="0.55")
    for i in range(min(len(on_interval), MAX_TRAJECTORIES_SHOWN)):
        ax.plot(*data.ys_true[i].T, color="k", lw=0.6, alpha=0.6)
        ax.plot(*on_interval[i].T, color=colour, lw=1.0)
        ax.plot(*later[i].T, color=colour, lw=1.0, ls=":")
    gx, gy = _plane(data)
    ax.set_xlim(gx.min(), gx.max())
    ax.set_ylim(gy.min(), gy.max())
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _strip_indices(count: int) -> list[int]:
    return sorted(set(np.linspace(0, count - 1, min(count, SNAPSHOTS_IN_STRIP)).round().astype(int)))


def dynamics_snapshots(data, snapshots: dict[str, list[tuple]], path, *, title: str = "") -> None:
    """A strip of snapshots of each fit as training proceeds: learned trajectories (solid on the
    training interval, dotted beyond) over the truth (black) and the observations (grey)."""
    rows = len(snapshots)
    columns = max(len(_strip_indices(len(s))) for s in snapshots.values())
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.7 * rows), squeeze=False)
    for row, (name, series) in enumerate(snapshots.items()):
        for column, index in enumerate(_strip_indices(len(series))):
            step, on_interval, later = series[index]
            _draw_snapshot(axes[row, column], data, on_interval, later, _colour(row))
            axes[row, column].set_title(f"{name}, step {step}", fontsize=9)
        for column in range(len(_strip_indices(len(series))), columns):
            axes[row, column].axis("off")
    fig.suptitle(f"{title}: the fit as training proceeds")
    save_figure(fig, path)


def dynamics_animation(
    data, snapshots: dict[str, list[tuple]], path, *, title: str = "", fps: int = 4
) -> None:
    """An animated GIF of every snapshot of every fit (side by side), one frame per snapshot."""
    path = Path(path)
    names = list(snapshots)
    frames = max(len(series) for series in snapshots.values())
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.4), squeeze=False)

    def draw(frame: int) -> None:
        for column, name in enumerate(names):
            series = snapshots[name]
            step, on_interval, later = series[min(frame, len(series) - 1)]
            ax = axes[0, column]
            ax.clear()
            _draw_snapshot(ax, data, on_interval, later, _colour(column))
            ax.set_title(f"{name}, step {step}", fontsize=10)
        fig.suptitle(title)

    animation = FuncAnimation(fig, draw, frames=frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(".partial-" + path.name)
    animation.save(temporary, writer=PillowWriter(fps=fps), dpi=80)
    plt.close(fig)
    os.replace(temporary, path)
