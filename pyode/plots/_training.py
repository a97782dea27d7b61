"""Training curves of several models side by side."""

from ._style import plt, save_figure

__all__ = ["model_losses"]

COLOURS = ("tab:blue", "tab:green", "tab:orange", "tab:red", "tab:purple")


def model_losses(
    histories: dict[str, list[dict]], path, *, loss_label: str, noise: float = 0.0, title: str = ""
) -> None:
    """Each model's training loss (symmetric log scale) and batch RMSE (log scale) against step;
    `histories` maps a label to its history records (`loss`, `rmse` and `step` in each)."""
    fig, (ax_loss, ax_rmse) = plt.subplots(1, 2, figsize=(10, 3.6))
    for index, (label, history) in enumerate(histories.items()):
        steps = [r["step"] for r in history]
        colour = COLOURS[index % len(COLOURS)]
        ax_loss.plot(steps, [r["loss"] for r in history], lw=0.6, color=colour, label=label)
        ax_rmse.semilogy(steps, [r["rmse"] for r in history], lw=0.6, color=colour, label=label)
    ax_loss.set_yscale("symlog", linthresh=1e-3)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel(loss_label)
    if noise > 0:
        ax_rmse.axhline(noise, color="0.3", ls=":", lw=1, label="noise")
    ax_rmse.set_xlabel("step")
    ax_rmse.set_ylabel("batch RMSE (log)")
    for ax in (ax_loss, ax_rmse):
        ax.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(fig, path)
