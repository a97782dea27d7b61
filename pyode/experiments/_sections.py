"""Settings sections more than one experiment uses: a field's shape, a solve, a training run."""

import dataclasses
from typing import Any

from .. import ADJOINTS, SOLVER_NAMES, check_options
from ..models import ACTIVATION_NAMES
from ..train import OPTIMIZERS, SCHEDULES, TrainOptions
from ._settings import Section, option, reported_at


@dataclasses.dataclass(frozen=True)
class FieldSettings(Section):
    """An MLP vector field: hidden `width` x `depth`, its activation, and whether t is an input."""

    width: int = option(64, minimum=1)
    depth: int = option(1, minimum=0)
    activation: str = option("tanh", choices=ACTIVATION_NAMES)
    time_input: bool = option(False)


@dataclasses.dataclass(frozen=True)
class SolveSettings(Section):
    """Keyword arguments of `pyode.solve`: adaptive (rtol, atol) or fixed (dt or steps).

    Giving a fixed step clears the tolerances and giving tolerances clears the fixed step,
    so that a preset can switch between the two without naming the others null.
    """

    solver: str = option("dopri5", choices=SOLVER_NAMES)
    adjoint: str = option("checkpoint", choices=ADJOINTS)
    rtol: float | None = option(1e-3, above=0)
    atol: float | None = option(1e-3, above=0)
    dt: float | None = option(None, above=0)
    steps: int | None = option(None, minimum=1)
    max_steps: int = option(4096, minimum=1)

    def adjusted(self, updates: dict[str, Any]) -> "SolveSettings":
        fixed, adaptive = ("dt", "steps"), ("rtol", "atol")
        if any(updates.get(k) is not None for k in fixed) and not set(adaptive) & set(updates):
            updates = {"rtol": None, "atol": None, **updates}
        elif any(updates.get(k) is not None for k in adaptive) and not set(fixed) & set(updates):
            updates = {"dt": None, "steps": None, **updates}
        return dataclasses.replace(self, **updates)

    def validate(self, where: str) -> "SolveSettings":
        options = self.options()
        options.pop("max_steps")
        with reported_at(where):
            check_options(**options)
        return self

    def options(self) -> dict[str, Any]:
        """The keyword arguments of `pyode.solve` (unset ones left out)."""
        return {k: v for k, v in self.to_dict().items() if v is not None}


RUN_OPTIONS = ("steps", "milestones", "progress", "description")
"""`TrainOptions` fields each run passes to `TrainSettings.options`: settings may hold them in
other units (epochs), so they are never copied by name."""


@dataclasses.dataclass(frozen=True)
class TrainSettings(Section):
    """The optimiser and the run's bookkeeping (`pyode.train.TrainOptions` has what each means).

    Experiments extend it with how long to train (steps or epochs) and their batch sizes.
    """

    learning_rate: float = option(1e-3, above=0)
    schedule: str = option("constant", choices=SCHEDULES)
    optimizer: str = option("adam", choices=OPTIMIZERS)
    momentum: float = option(0.9, minimum=0)
    weight_decay: float = option(0.0, minimum=0)
    gradient_clip: float | None = option(None, above=0)
    checkpoint_every: int = option(100, minimum=1)
    count_every: int = option(50, minimum=1)
    divergence_factor: float = option(1e4, above=1)

    def options(self, *, steps: int, description: str, progress: bool, milestones=()) -> TrainOptions:
        """The loop's options for a run of `steps` steps: the rest from the fields of the same name."""
        declared = {field.name for field in dataclasses.fields(self)} - set(RUN_OPTIONS)
        shared = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(TrainOptions)
            if field.name in declared
        }
        return TrainOptions(
            **shared,
            steps=steps,
            milestones=tuple(milestones),
            progress=progress,
            description=description,
        )


@dataclasses.dataclass(frozen=True)
class StepTrainSettings(TrainSettings):
    """Training for a number of `steps`."""

    steps: int = option(1000, minimum=1)


@dataclasses.dataclass(frozen=True)
class BatchTrainSettings(StepTrainSettings):
    """Training for a number of `steps` on random batches of `batch_size`."""

    batch_size: int = option(256, minimum=1)


@dataclasses.dataclass(frozen=True)
class GeneratedData(Section):
    """A data stage's seed and its generator's options (`data`), which `check_options` checks."""

    seed: int = option(42, minimum=0)
    data: dict = option({})

    def check_options(self) -> None:
        """Raise a ValueError naming an option the generator does not take (subclasses say which)."""

    def validate(self, where: str) -> "GeneratedData":
        with reported_at(f"{where}.data"):
            self.check_options()
        return self
