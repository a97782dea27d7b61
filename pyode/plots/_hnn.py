"""Figures of the Hamiltonian neural network experiment: energy along long rollouts, phase portraits."""

import numpy as np

from ._style import plt, save_figure

__all__ = ["hnn_energy", "hnn_phase", "hnn_training"]

STYLES = {
    "truth": {"color": "0.2", "lw": 2.4},
    "baseline": {"color": "tab:red", "lw": 1.4},
    "hnn": {"color": "tab:blue", "lw": 1.4},
    "separable": {"color": "tab:green", "lw": 1.4},
}
"""Colour and width by model kind (a curve's label starts with its kind); other kinds cycle below."""
OTHER_COLOURS = ("tab:purple", "tab:orange", "tab:brown")


def _style(label: str, index: int) -> dict:
    kind = label.split(",")[0].split()[0]
    style = dict(STYLES.get(kind, {"color": OTHER_COLOURS[index % len(OTHER_COLOURS)], "lw": 1.4}))
    if "semi-implicit" in label:
        style["ls"] = "--"
    return style


def hnn_energy(
    ts: np.ndarray, energies: dict[str, np.ndarray], initial: np.ndarray, path, *, title=""
) -> None:
    """The true energy H(x(t)) along each model's rollouts from the test initial states.

    `energies` maps a curve's label ("truth, dopri5", "hnn, semi-implicit Euler", ...) to an array
    (trajectory, time) of the true Hamiltonian along that rollout; `initial` is H at each initial state.
    Left: the first test trajectory's energy against t. Right: the mean over test trajectories of
    |H(x(t)) - H(x(0))| (log scale), where drift shows as growth and a symplectic solve as a band.
    """
    fig, (one, drift) = plt.subplots(1, 2, figsize=(11.5, 4.0), layout="constrained")
    for index, (label, energy) in enumerate(energies.items()):
        style = _style(label, index)
        one.plot(ts, energy[0], label=label, **style)
        error = np.mean(np.abs(energy - initial[:, None]), axis=0)
        drift.semilogy(ts, np.maximum(error, 1e-17), label=label, **style)
    one.axhline(initial[0], color="0.6", ls=":", lw=1)
    one.set_xlabel("t")
    one.set_ylabel("true energy H(q, p)")
    one.set_title("first test trajectory")
    drift.set_xlabel("t")
    drift.set_ylabel("mean |H(x(t)) - H(x(0))| over test trajectories")
    drift.set_title("energy drift")
    drift.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    save_figure(fig, path)


def hnn_phase(
    grid: tuple[np.ndarray, np.ndarray],
    panels: dict[str, dict],
    truth_paths: np.ndarray,
    points: np.ndarray,
    path,
    *,
    title: str = "",
) -> None:
    """Phase portraits (q, p): one panel per entry of `panels`, each a vector field on `grid`
    (`field`: (U, V) arrays of the grid's shape), optional level sets (`levels`: a scalar on the grid,
    a learnt or true Hamiltonian) and rollouts (`paths`: (trajectory, time, 2)), the true orbits of the
    same initial states in grey (`truth_paths`). `points`, the noisy training states, are drawn on the
    first panel."""
    count = len(panels)
    fig, axes = plt.subplots(1, count, figsize=(3.6 * count, 3.7), squeeze=False, layout="constrained")
    q, p = grid
    for index, (ax, (label, panel)) in enumerate(zip(axes[0], panels.items())):
        if panel.get("levels") is not None:
            ax.contour(q, p, panel["levels"], levels=12, colors="0.8", linewidths=0.7)
        u, v = panel["field"]
        ax.quiver(q, p, u, v, color="0.45", width=4e-3, angles="xy")
        if index == 0:
            ax.scatter(points[:, 0], points[:, 1], s=3, color="tab:purple", alpha=0.5, label="training data")
        for i, orbit in enumerate(truth_paths):
            ax.plot(
                orbit[:, 0], orbit[:, 1], color="0.15", lw=2.2, alpha=0.35, label="truth" if i == 0 else None
            )
        for i, rollout in enumerate(panel.get("paths", ())):
            style = _style(label, index)
            ax.plot(
                rollout[:, 0],
                rollout[:, 1],
                color=style["color"],
                lw=1.0,
                label="rollout" if i == 0 else None,
            )
        ax.set_xlim(q.min(), q.max())
        ax.set_ylim(p.min(), p.max())
        ax.set_xlabel("q")
        ax.set_ylabel("p")
        ax.set_title(label)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    save_figure(fig, path)


def hnn_training(
    histories: dict[str, list[dict]], validations: dict[str, list[dict]], path, *, title=""
) -> None:
    """Each model's training loss (every step) and validation loss (dashed, every few steps) against
    step, log scale. `histories` maps a label to its history records (`step`, `loss`), `validations` to
    its records (`step`, `validation_derivative_mse`)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.0), layout="constrained")
    for index, (label, history) in enumerate(histories.items()):
        style = _style(label, index)
        ax.semilogy(
            [r["step"] for r in history],
            [r["loss"] for r in history],
            lw=0.8,
            color=style["color"],
            label=f"{label}, training",
        )
        shown = validations.get(label, [])
        ax.semilogy(
            [r["step"] for r in shown],
            [r["validation_derivative_mse"] for r in shown],
            ls="--",
            marker=".",
            lw=1.0,
            color=style["color"],
            label=f"{label}, validation",
        )
    ax.set_xlabel("step")
    ax.set_ylabel("MSE of the time derivatives")
    ax.legend(fontsize=7)
    ax.set_title(title)
    save_figure(fig, path)
