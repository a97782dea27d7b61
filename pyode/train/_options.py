"""How a run trains: the optimiser, its schedule, and how often to save, count and check."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optax

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "step")


@dataclass(frozen=True)
class TrainOptions:
    """Everything the training loop needs beyond the model, the loss and the batches.

    - `schedule`: the learning rate held (`constant`), cosine-decayed to zero over `steps`
      (`cosine`), or multiplied by `decay` at each step in `milestones` (`step`);
    - `optimizer`: `adam` (AdamW when `weight_decay` > 0) or `sgd` with `momentum`
      (L2 weight decay added to the gradient), after optional global-norm `gradient_clip`;
    - `checkpoint_every`: steps between saved states (also saved on an interrupt);
    - `count_every`: steps between runs of the counted step, which measures backward
      evaluations as executed (host callbacks cost more than a small network, so the
      other steps run bare);
    - `divergence_factor`: training stops when the smoothed loss exceeds this multiple of
      its best value (non-finite losses, gradients and parameters always stop it).
    """

    steps: int
    learning_rate: float
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    decay: float = 0.1
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    gradient_clip: float | None = None
    checkpoint_every: int = 100
    count_every: int = 50
    divergence_factor: float = 1e4
    progress: bool = True
    description: str = "train"

    def __post_init__(self):
        positive = {
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "checkpoint_every": self.checkpoint_every,
            "count_every": self.count_every,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.gradient_clip is not None and not self.gradient_clip > 0:
            raise ValueError(f"gradient_clip must be positive or null, got {self.gradient_clip}")
        if not self.divergence_factor > 1:
            raise ValueError(f"divergence_factor must exceed 1, got {self.divergence_factor}")


def make_optimizer(options: TrainOptions) -> "optax.GradientTransformation":
    """The optax transformation `options` describe (optax imported here: `TrainOptions` imports no JAX)."""
    import optax

    rate = options.learning_rate
    if options.schedule == "cosine":
        rate = optax.cosine_decay_schedule(options.learning_rate, options.steps)
    elif options.schedule == "step":
        rate = optax.piecewise_constant_schedule(rate, {int(s): options.decay for s in options.milestones})
    if options.optimizer == "sgd":
        step = optax.chain(
            optax.add_decayed_weights(options.weight_decay), optax.sgd(rate, momentum=options.momentum)
        )
    elif options.weight_decay:
        step = optax.adamw(rate, weight_decay=options.weight_decay)
    else:
        step = optax.adam(rate)
    if options.gradient_clip:
        return optax.chain(optax.clip_by_global_norm(options.gradient_clip), step)
    return step
