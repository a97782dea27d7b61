"""Classification in the plane: NODE and ANODE classifiers on two spirals and concentric circles.

Data: two classes of points (`pyode.data.make_split`). Model: a (augmented) neural ODE from
t = 0 to t1 followed by a linear logit. Training: sigmoid cross-entropy on random batches,
float32. Evaluation: accuracy, loss and evaluation counts on both parts of the split, and
three figures (training curves, the learnt flow, the decision regions).
"""

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data import GENERATORS, Split, make_split, split_sizes
from ._common import HISTORY_UNITS, read_history, summarise_history, train_new_model, write_run_metrics
from ._sections import BatchTrainSettings, FieldSettings, SolveSettings
from ._settings import (
    Section,
    SettingsError,
    changes_at,
    data_part,
    named_entries,
    option,
    reported_at,
    section_keys,
)

if TYPE_CHECKING:
    from ..models import ODEClassifier

EXPERIMENT = "classify"


@dataclasses.dataclass(frozen=True)
class ModelSettings(Section):
    """`augment` zero dimensions padded to the 2-D state (0: NODE, > 0: ANODE), integrated to `t1`."""

    augment: int = option(0, minimum=0)
    t1: float = option(1.0, above=0)


@dataclasses.dataclass(frozen=True)
class DataSettings(Section):
    """A data set: the generator (`dataset`), its options and `test_fraction` (`data`), the seed."""

    seed: int = option(42, minimum=0)
    dataset: str = option("spiral", choices=GENERATORS)
    data: dict = option({})

    def validate(self, where: str) -> "DataSettings":
        with reported_at(f"{where}.data"):
            train_size, test_size = split_sizes(self.dataset, **self.data)
        if test_size < 1 or train_size < 1:
            raise SettingsError(
                f"{where}.data: the split would leave {train_size} training and {test_size} test points"
            )
        return self


@dataclasses.dataclass(frozen=True)
class Settings(DataSettings):
    """One classification run: its data set, the model, the solve, training."""

    model: ModelSettings = option(ModelSettings())
    field: FieldSettings = option(FieldSettings(width=128, depth=2, activation="tanh", time_input=True))
    solve: SolveSettings = option(SolveSettings())
    train: BatchTrainSettings = option(
        BatchTrainSettings(steps=4000, learning_rate=3e-3, schedule="cosine", gradient_clip=1.0)
    )

    def validate(self, where: str) -> "Settings":
        super().validate(where)
        train_size, _ = split_sizes(self.dataset, **self.data)
        if self.train.batch_size > train_size:
            raise SettingsError(
                f"{where}.train.batch_size is {self.train.batch_size}; "
                f"the training set has {train_size} points"
            )
        return self

    def model_spec(self) -> dict:
        """What `pyode.models.build_model("classifier", ...)` takes to build this run's model."""
        return {
            "data_dim": 2,
            **self.model.to_dict(),
            **self.field.to_dict(),
            "solve_options": {**self.solve.options(), "throw": False},
        }


def resolve(changes: dict, where: str = "settings") -> Settings:
    """The defaults overlaid with `changes`, checked."""
    return Settings().overlay(changes, where)


def plan(section: dict, *, seed: int) -> dict[str, Settings]:
    """Every run of the config's `classify` section, by name `dataset/model`, resolved and checked.

    `datasets` and `models` are lists of entries (name, options, an optional `train`
    override); `field`, `solve`, `train` and `t1` change every run's defaults.
    """
    section_keys(
        section, "classify", required=("datasets", "models"), optional=("field", "solve", "train", "t1")
    )
    datasets = named_entries(section, "datasets", "classify")
    models = named_entries(section, "models", "classify", keys=("augment", "train"))
    runs = {}
    for dataset in datasets:
        for model in models:
            changes = {
                "seed": seed,
                "dataset": dataset["name"],
                "data": {k: v for k, v in dataset.items() if k not in ("name", "train")},
                "model": {
                    "augment": model.get("augment", 0),
                    **({"t1": section["t1"]} if "t1" in section else {}),
                },
                **{key: section[key] for key in ("field", "solve") if key in section},
                "train": {
                    **changes_at(section, "train", "classify"),
                    **changes_at(dataset, "train", f"classify.datasets[{dataset['name']}]"),
                    **changes_at(model, "train", f"classify.models[{model['name']}]"),
                },
            }
            name = f"{dataset['name']}/{model['name']}"
            runs[name] = Settings().overlay(changes, f"classify[{name}]")
    return runs


def resolve_data(changes: dict, where: str = "settings") -> DataSettings:
    """The data stage's defaults overlaid with `changes` (a run's other settings ignored), checked."""
    return DataSettings().overlay(data_part(changes, Settings, DataSettings), where)


def make_data(settings: DataSettings, out: str | Path) -> Split:
    """Generate the run's data set, split it and write it to `out`."""
    data = dict(settings.data)
    split = make_split(settings.dataset, seed=settings.seed, **data)
    split.save(out)
    return split


def train(data_path: str | Path, settings: Settings, out_dir: str | Path, *, progress: bool = True):
    """Train on the split at `data_path`; write model.npz and history.jsonl to `out_dir`."""
    import jax.numpy as jnp

    from ..models import classifier_loss

    out_dir = Path(out_dir)
    split = Split.load(data_path)
    batch_size, seed = settings.train.batch_size, settings.seed
    if batch_size > len(split.x_train):
        raise SettingsError(f"train.batch_size is {batch_size}; {data_path} has {len(split.x_train)} points")

    def batch_at(step: int):
        index = np.random.default_rng([seed, step]).choice(len(split.x_train), batch_size, replace=False)
        return jnp.asarray(split.x_train[index]), jnp.asarray(split.y_train[index])

    spec = settings.model_spec()
    train_new_model(
        classifier_loss,
        batch_at,
        settings,
        out_dir,
        experiment=EXPERIMENT,
        kind="classifier",
        spec=spec,
        description=f"train {out_dir.parent.name}/{out_dir.name}",
        progress=progress,
        data_path=data_path,
    )


def evaluate_classifier(model: "ODEClassifier", split: Split) -> dict:
    """Accuracy, loss and forward evaluation counts on the train and test sets.

    Each part is solved twice: bare (timed) and with its evaluations counted as executed, which
    equals the count from the solver's statistics unless the first step was rejected (docs/solve.md).
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from .. import counted_programs, counting, status_message
    from ..models import classifier_loss

    bare = eqx.filter_jit(classifier_loss)
    counted = eqx.filter_jit(lambda m, b: classifier_loss(m, b))
    metrics = {}
    for part, x, y in (("train", split.x_train, split.y_train), ("test", split.x_test, split.y_test)):
        batch = (jnp.asarray(x), jnp.asarray(y))
        tic = time.perf_counter()
        loss, aux = jax.block_until_ready(bare(model, batch))
        seconds = time.perf_counter() - tic
        if int(aux["solver_status"]):
            raise RuntimeError(
                f"the solver failed on the {part} set: {status_message(int(aux['solver_status']))}"
            )
        with counted_programs(), counting() as counts:
            jax.block_until_ready(counted(model, batch))
        metrics[f"{part}_loss"] = float(loss)
        metrics[f"{part}_accuracy"] = float(aux["accuracy"])
        metrics[f"{part}_nfe_forward"] = int(aux["nfe_forward"])
        metrics[f"{part}_nfe_counted"] = counts.forward
        metrics[f"{part}_eval_seconds"] = seconds
    return metrics


UNITS = {
    **HISTORY_UNITS,
    **{
        f"{part}_{name}": unit
        for part in ("train", "test")
        for name, unit in (
            ("loss", ""),
            ("accuracy", "fraction"),
            ("nfe_forward", "evaluations"),
            ("nfe_counted", "evaluations"),
            ("eval_seconds", "s"),
        )
    },
}


def evaluate(run_dir: str | Path, data_path: str | Path, out_dir: str | Path, *, run: str) -> dict:
    """Evaluate the classifier trained in `run_dir`; write metrics.json and the figures to `out_dir`."""
    from .. import plots
    from ..models import load_model

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    model, metadata = load_model(run_dir / "model.npz")
    split = Split.load(data_path)
    history = read_history(run_dir / "history.jsonl")
    metrics = {**evaluate_classifier(model, split), **summarise_history(history)}
    dtype = str(split.x_train.dtype)
    record = write_run_metrics(
        out_dir, EXPERIMENT, run, metrics, metadata["settings"], units=UNITS, dtype=dtype
    )
    title = f"{run.split('/')[-1].upper()} on {metadata['settings']['dataset']}"
    plots.training_curves(history, out_dir / "loss.png", title=title)
    plots.classifier_dynamics(model, split, out_dir / "dynamics.png", title=title)
    plots.decision_regions(model, split, out_dir / "decision.png", title=title)
    return record


# The commands this experiment offers (docs/architecture.md, "Adding an experiment").
from ._registry import Experiment, data_command, evaluate_run_command, train_command  # noqa: E402

DECLARATION = Experiment(
    EXPERIMENT,
    commands=(
        data_command(EXPERIMENT, make_data, resolve_data, "generate a two-class data set and split it"),
        train_command(
            EXPERIMENT,
            train,
            resolve,
            "train a (A)NODE classifier",
            out="run folder (model.npz, history.jsonl)",
        ),
        evaluate_run_command(
            EXPERIMENT, evaluate, "metrics and figures of a trained classifier", run_example="spiral/node"
        ),
    ),
)
