"""Figures of the latent ODE experiment: spirals (Chen et al.'s Figure 8 kind), latent paths, losses, RMSE."""

import numpy as np

from ._style import plt, save_figure

__all__ = ["latent_rmse", "latent_spirals", "latent_trajectories"]

MODEL_LABELS = {"latent_ode": "latent ODE", "rnn": "RNN"}
MODEL_COLOURS = {"latent_ode": "tab:blue", "rnn": "tab:green"}
SPIRALS_SHOWN = 4


def _shown(clockwise: np.ndarray) -> list[int]:
    """The first held-out spirals of each direction, alternating."""
    cw = list(np.flatnonzero(clockwise))
    ccw = list(np.flatnonzero(~clockwise))
    order = [i for pair in zip(cw, ccw) for i in pair]
    return order[:SPIRALS_SHOWN]


def latent_spirals(data, predictions: dict[str, dict], path, *, title: str = "") -> None:
    """Held-out spirals: truth, the observations, each model's reconstruction and extrapolation.

    One row per model (`predictions` maps a model to `pyode.experiments.latent.predict`'s
    output on the test part), one column per spiral.
    """
    shown = _shown(np.asarray(data.test_clockwise))
    fig, axes = plt.subplots(
        len(predictions), len(shown), figsize=(3.3 * len(shown), 3.3 * len(predictions)), squeeze=False
    )
    window = data.window
    for row, (model, predicted) in enumerate(predictions.items()):
        for column, i in enumerate(shown):
            ax = axes[row, column]
            observed = data.test_noisy[i, data.test_index[i]]
            ax.plot(*data.test_truth[i].T, color="0.6", lw=1, label="truth")
            ax.scatter(*observed.T, s=6, color="k", zorder=3, label="observations")
            if "window" in predicted:
                ax.plot(*predicted["window"][i].T, color="tab:blue", lw=1.3, label="reconstruction")
            else:
                ax.scatter(
                    *predicted["at_observations"][i].T, s=6, color="tab:blue", label="one-step predictions"
                )
            start = predicted["window"][i][-1:] if "window" in predicted else observed[-1:]
            extrapolation = np.concatenate([start, predicted["extrapolation"][i]])
            ax.plot(*extrapolation.T, color="tab:red", lw=1.3, label="extrapolation")
            ax.set_aspect("equal", "datalim")
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(MODEL_LABELS.get(model, model))
            if row == 0:
                ax.set_title("clockwise" if data.test_clockwise[i] else "counter-clockwise", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="best")
    if len(predictions) > 1:
        axes[1, 0].legend(fontsize=7, loc="best")
    extrapolated = data.test_truth.shape[1] - window
    fig.suptitle(f"Held-out spirals, {title}, then {extrapolated} times extrapolated")
    save_figure(fig, path)


def latent_trajectories(
    latent: np.ndarray, clockwise: np.ndarray, window: int, path, *, title: str = ""
) -> None:
    """Latent paths z(t) of held-out spirals (posterior means of z0, then the ODE) in the plane of their
    first two principal components, coloured by the spiral's direction; dots mark z0, the
    paths turn dashed past the observation window."""
    flat = latent.reshape(-1, latent.shape[-1])
    centred = flat - flat.mean(axis=0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    projected = (latent - flat.mean(axis=0)) @ directions[:2].T
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for i in range(min(len(projected), 60)):
        colour = "tab:red" if clockwise[i] else "tab:blue"
        ax.plot(*projected[i, :window].T, color=colour, lw=0.7, alpha=0.8)
        ax.plot(*projected[i, window - 1 :].T, color=colour, lw=0.7, alpha=0.5, ls="--")
        ax.scatter(*projected[i, 0], color=colour, s=8)
    ax.plot([], [], color="tab:red", label="clockwise")
    ax.plot([], [], color="tab:blue", label="counter-clockwise")
    ax.set_xlabel("latent principal component 1")
    ax.set_ylabel("latent principal component 2")
    ax.legend(fontsize=8)
    ax.set_title(f"Latent trajectories, {title}", fontsize=10)
    save_figure(fig, path)


def latent_rmse(rows: list[dict], path) -> None:
    """Held-out extrapolation RMSE (against the truth) against the number of observations, per model."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for model in sorted({row["model"] for row in rows}):
        points = sorted(
            (row["observations"], row["test_extrapolation_rmse"]) for row in rows if row["model"] == model
        )
        counts, values = zip(*points)
        ax.plot(
            counts, values, marker="o", color=MODEL_COLOURS.get(model), label=MODEL_LABELS.get(model, model)
        )
    ax.set_xlabel("observations per spiral (of the window's times)")
    ax.set_ylabel("extrapolation RMSE on held-out spirals")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title("Predictive RMSE past the observed window", fontsize=10)
    save_figure(fig, path)
