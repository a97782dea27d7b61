"""Figures of the neural-SDE experiment: training, recovered coefficients, paths, marginals, convergence."""

import numpy as np

from ._style import plt, save_figure

__all__ = ["sde_coefficients", "sde_convergence", "sde_marginals", "sde_paths", "sde_training"]

PATHS_SHOWN = 12


def sde_training(history: list[dict], path, *, title: str = "") -> None:
    """The transition negative log-likelihood of each batch against step."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([r["step"] for r in history], [r["nll"] for r in history], lw=0.6)
    ax.set_xlabel("step")
    ax.set_ylabel("batch NLL per transition (nats)")
    ax.set_title(f"{title}: Euler-Maruyama transition likelihood")
    save_figure(fig, path)


def sde_coefficients(grid, learnt: tuple, exact: tuple, states, path, *, title: str = "") -> None:
    """Learnt drift and diffusion against the truth over the observed states (histogram beneath)."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for column, name in enumerate(("drift f(x)", "diffusion g(x)")):
        ax = axes[0, column]
        ax.plot(grid, exact[column][:, 0], color="k", lw=1.5, label="truth")
        ax.plot(grid, learnt[column][:, 0], color="tab:red", lw=1.2, ls="--", label="learnt")
        ax.set_title(name)
        ax.legend(fontsize=8)
        axes[1, column].hist(states, bins=80, range=(grid[0], grid[-1]), color="0.6")
        axes[1, column].set_xlabel("state x")
    axes[1, 0].set_ylabel("observations")
    fig.suptitle(f"{title}: recovered coefficients over the central 99% of the observed states")
    save_figure(fig, path)


def sde_paths(ts, data, sampled, path, *, title: str = "") -> None:
    """A few observed paths beside as many paths sampled from the fitted SDE (the same starting points)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, paths, name, colour in (
        (axes[0], data, "data (exact)", "k"),
        (axes[1], sampled, "fitted SDE", "tab:red"),
    ):
        for index in range(min(PATHS_SHOWN, len(paths))):
            ax.plot(ts, paths[index], lw=0.7, color=colour, alpha=0.7)
        ax.set_title(name)
        ax.set_xlabel("t")
    axes[0].set_ylabel("x")
    fig.suptitle(title)
    save_figure(fig, path)


def sde_marginals(ts, data, fitted, true, moments: tuple, path, *, title: str = "") -> None:
    """Mean and standard deviation over paths against time: the data, the fitted SDE and the true SDE
    (both sampled with the same solver and Brownian paths), and the exact moments."""
    fig, (ax_mean, ax_std) = plt.subplots(1, 2, figsize=(11, 3.8))
    series = (
        ("data", data, "k", "-"),
        ("fitted SDE", fitted, "tab:red", "--"),
        ("true SDE", true, "tab:blue", ":"),
    )
    for name, paths, colour, style in series:
        ax_mean.plot(ts, paths.mean(axis=0), color=colour, ls=style, label=name)
        ax_std.plot(ts, paths.std(axis=0), color=colour, ls=style, label=name)
    ax_mean.plot(ts, moments[0], color="0.5", lw=3, alpha=0.4, label="exact")
    ax_std.plot(ts, moments[1], color="0.5", lw=3, alpha=0.4, label="exact")
    ax_mean.set_ylabel("mean over paths")
    ax_std.set_ylabel("standard deviation over paths")
    for ax in (ax_mean, ax_std):
        ax.set_xlabel("t")
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: marginal statistics")
    save_figure(fig, path)


def sde_convergence(details: dict, orders: dict, path) -> None:
    """Strong (E|X_h - X|) and weak (|E X_h - E X|) errors against the step, log-log, with fitted slopes."""
    steps = np.asarray(details["steps"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kind in zip(axes, ("strong", "weak")):
        for solver, measured in orders.items():
            label = f"{solver}: slope {measured[f'{kind}_order']:.2f}"
            ax.loglog(steps, details[solver][kind], marker="o", label=label)
        for order, style in ((0.5, ":"), (1.0, "--")):
            reference = details[next(iter(orders))][kind][-1] * (steps / steps[-1]) ** order
            ax.loglog(steps, reference, color="0.6", ls=style, lw=0.8, label=f"order {order:g}")
        ax.set_xlabel("step h")
        ax.set_ylabel(f"{kind} error at t1")
        ax.legend(fontsize=8)
    axes[0].set_title("strong: E|X_h(t1) - X(t1)|")
    axes[1].set_title("weak: |E X_h(t1) - E X(t1)|, same paths")
    fig.suptitle("Geometric Brownian motion against its exact solution on the same Brownian paths")
    save_figure(fig, path)
