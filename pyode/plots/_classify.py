"""Figures of the classification experiment: training curves, learned flow, decision regions."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._style import CLASS_COLOURS, draw_evaluation_counts, plt, save_figure

__all__ = ["classifier_dynamics", "decision_regions", "training_curves"]


def training_curves(history: list[dict], path, *, title: str = "") -> None:
    """Loss (log scale) and accuracy against step, and evaluations per step (backward on counted steps)."""
    steps = np.array([r["step"] for r in history])
    fig, (ax_loss, ax_nfe) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"wspace": 0.45})
    ax_loss.semilogy(steps, [r["loss"] for r in history], lw=0.8, color="tab:blue", label="loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss (log)")
    if "accuracy" in history[0]:
        ax_acc = ax_loss.twinx()
        ax_acc.plot(steps, [r["accuracy"] for r in history], lw=0.6, color="tab:green", alpha=0.7)
        ax_acc.set_ylabel("batch accuracy", color="tab:green")
        ax_acc.set_ylim(0, 1.02)
    draw_evaluation_counts(ax_nfe, history)
    fig.suptitle(title)
    save_figure(fig, path)


def _bounds(x, margin=0.25):
    low, high = x.min(axis=0) - margin, x.max(axis=0) + margin
    return low, high


def classifier_dynamics(model, split, path, *, title: str = "", points: int = 80, times: int = 41) -> None:
    """The learned flow: trajectories of test points from t0 to t1, coloured by class.

    For a plain NODE (2-D state) the vector field at t0 is drawn beneath; for an ANODE the
    trajectories are drawn in the first three state dimensions.
    """
    ode = model.ode
    x, y = split.x_test[:points], split.y_test[:points]
    ts = jnp.linspace(ode.t0, ode.t1, times)
    ys = np.asarray(eqx.filter_jit(lambda m, x0: m.ode.solve(x0, ts).ys)(model, jnp.asarray(x)))
    state_dim = ys.shape[-1]
    if state_dim >= 3:
        fig = plt.figure(figsize=(11, 5))
        ax3 = fig.add_subplot(1, 2, 1, projection="3d")
        for i in range(len(x)):
            ax3.plot(ys[:, i, 0], ys[:, i, 1], ys[:, i, 2], color=CLASS_COLOURS[y[i]], lw=0.7, alpha=0.8)
            ax3.scatter(*ys[-1, i, :3], color=CLASS_COLOURS[y[i]], s=6)
        ax3.set_xlabel("x1")
        ax3.set_ylabel("x2")
        ax3.set_zlabel("augmented dim 1")
        ax3.set_title("flow in the first three state dimensions")
        ax = fig.add_subplot(1, 2, 2)
    else:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        low, high = _bounds(np.concatenate([ys[0], ys[-1]]))
        gx, gy = np.meshgrid(np.linspace(low[0], high[0], 25), np.linspace(low[1], high[1], 25))
        grid = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=jnp.float32)
        velocity = np.asarray(jax.jit(lambda f, g: f(ode.t0, g))(ode.field, grid))
        ax.streamplot(
            gx,
            gy,
            velocity[:, 0].reshape(gx.shape),
            velocity[:, 1].reshape(gx.shape),
            color="0.75",
            density=1.1,
            linewidth=0.6,
        )
    for i in range(len(x)):
        ax.plot(ys[:, i, 0], ys[:, i, 1], color=CLASS_COLOURS[y[i]], lw=0.7, alpha=0.8)
    ax.scatter(ys[0, :, 0], ys[0, :, 1], c=[CLASS_COLOURS[c] for c in y], s=8, marker="o", label="t0")
    ax.scatter(ys[-1, :, 0], ys[-1, :, 1], c=[CLASS_COLOURS[c] for c in y], s=18, marker="x", label="t1")
    where = " over the field at t0" if state_dim == 2 else ", projected on the data plane"
    ax.set_title("trajectories from t0 (o) to t1 (x)" + where)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_aspect("equal", adjustable="datalim")
    fig.suptitle(title)
    save_figure(fig, path)


def decision_regions(model, split, path, *, title: str = "", resolution: int = 120) -> None:
    """Predicted probability of class 1 over the input plane, with the test points."""
    low, high = _bounds(np.concatenate([split.x_train, split.x_test]))
    gx, gy = np.meshgrid(np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution))
    grid = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=jnp.float32)
    logits = np.asarray(eqx.filter_jit(lambda m, g: m(g)[0])(model, grid))
    probability = 1 / (1 + np.exp(-logits.reshape(gx.shape)))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    filled = ax.contourf(gx, gy, probability, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55)
    ax.contour(gx, gy, probability, levels=[0.5], colors="k", linewidths=1.0)
    fig.colorbar(filled, ax=ax, label="P(class 1)")
    for label in (0, 1):
        chosen = split.y_test == label
        ax.scatter(
            *split.x_test[chosen].T, s=6, color=CLASS_COLOURS[label], edgecolor="none", label=f"class {label}"
        )
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("decision regions (test points)")
    fig.suptitle(title)
    save_figure(fig, path)
