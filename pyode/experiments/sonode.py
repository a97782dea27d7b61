"""Second-order neural ODEs (Norcliffe et al. 2020) against NODE and ANODE on position-only tasks.

Tasks (`pyode.data.POSITION_TASKS`): `crossing`, ANODE's 1-D problem x0 -> -x0 at t = 1 (a
NODE's flow keeps the order of points, so it cannot; ANODE and SONODE can), and
`oscillator`, a damped oscillator observed in position only, learnt on [0, t1] and
extrapolated past it. Models (`pyode.models.PositionODE`): `node`, `anode` and `sonode`
(x'' = f(x, x') as a first-order system in (x, v), v0 learnt from x0). Training: mean
squared error of the positions at the observed times, float32, full batch. Evaluation:
errors, parameter counts and figures (the flows; fits and extrapolations).
"""

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data import POSITION_TASKS, PositionSeries, check_position_options
from ..models import POSITION_MODELS
from ._common import (
    HISTORY_UNITS,
    check_data_is_for,
    evaluation_options,
    filter_jit,
    read_history,
    rmse,
    summarise_history,
    train_new_model,
    write_metrics,
)
from ._sections import FieldSettings, GeneratedData, SolveSettings, StepTrainSettings
from ._settings import (
    Section,
    SettingsError,
    changes_at,
    data_part,
    named_entries,
    option,
    section_keys,
)

if TYPE_CHECKING:
    import jax

EXPERIMENT = "sonode"
DTYPE = np.float32
MODEL_LABELS = {"node": "NODE", "anode": "ANODE", "sonode": "SONODE"}
CROSSING_SOLVED = 1e-2
"""Test MSE below which a model counts as having solved the crossing task (a NODE cannot go below ~1/3)."""


@dataclasses.dataclass(frozen=True)
class DataSettings(GeneratedData):
    """A task's data: the generator (`task`), its options (`data`) and the seed."""

    seed: int = option(0, minimum=0)
    task: str = option("crossing", choices=POSITION_TASKS)

    def check_options(self) -> None:
        check_position_options(self.task, self.data)


@dataclasses.dataclass(frozen=True)
class ModelSettings(Section):
    """`kind`: node, anode or sonode; `augment`: ANODE's zero dimensions; `velocity_width`: the hidden
    width of SONODE's initial-velocity network."""

    name: str = option("sonode")
    kind: str = option("sonode", choices=POSITION_MODELS)
    augment: int = option(1, minimum=1)
    velocity_width: int = option(16, minimum=1)


@dataclasses.dataclass(frozen=True)
class Settings(DataSettings):
    """One model on one task: its data, the model, its field's shape, the solve, training."""

    model: ModelSettings = option(ModelSettings())
    field: FieldSettings = option(FieldSettings(width=32, depth=1, activation="tanh"))
    solve: SolveSettings = option(SolveSettings(rtol=1e-5, atol=1e-6))
    train: StepTrainSettings = option(
        StepTrainSettings(steps=1000, learning_rate=1e-2, schedule="cosine", gradient_clip=1.0)
    )

    def model_spec(self) -> dict:
        """What `pyode.models.build_model("position_ode", ...)` takes to build this run's model."""
        return {
            "kind": self.model.kind,
            "dim": 1,
            "augment": self.model.augment,
            "velocity_width": self.model.velocity_width,
            **self.field.to_dict(),
            "solve_options": {**self.solve.options(), "throw": False},
        }


TASK_DEFAULTS = {
    "crossing": {"field": {"width": 16}, "train": {"steps": 500}},
    "oscillator": {"train": {"steps": 1500}},
}
"""What each task changes of `Settings`' defaults."""


def resolve(changes: dict, where: str = "settings") -> Settings:
    """The task's defaults (`TASK_DEFAULTS`) overlaid with `changes` (which name the task)."""
    task = changes.get("task", Settings.task)
    base = Settings().overlay({"task": task}, where)
    return base.overlay(TASK_DEFAULTS[task], where).overlay(changes, where)


def plan(section: dict, *, seed: int) -> dict[str, Settings]:
    """Every run of the config's `sonode` section, by name `task/model`, resolved and checked.

    `tasks` entries name a task and change its runs (`data`, `field`, `solve`, `train`);
    `models` entries name a model, its `kind`, `augment` (ANODE) and a `train` override.
    """
    section_keys(section, "sonode", required=("tasks", "models"))
    tasks = named_entries(section, "tasks", "sonode", keys=("data", "field", "solve", "train"))
    models = named_entries(section, "models", "sonode", keys=("kind", "augment", "velocity_width", "train"))
    for model in models:
        kind = model.get("kind", ModelSettings.kind)
        if "augment" in model and kind != "anode":
            raise SettingsError(
                f"sonode.models[{model['name']}].augment is {model['augment']}: it pads an ANODE's state "
                f"with zero dimensions, and kind {kind!r} is not one (augment is for kind anode only)"
            )
    runs = {}
    for task in tasks:
        common = {k: v for k, v in task.items() if k not in ("name", "train")}
        for model in models:
            name = f"{task['name']}/{model['name']}"
            changes = {
                "seed": seed,
                "task": task["name"],
                **common,
                "model": {k: v for k, v in model.items() if k != "train"},
                "train": {
                    **changes_at(task, "train", f"sonode.tasks[{task['name']}]"),
                    **changes_at(model, "train", f"sonode.models[{model['name']}]"),
                },
            }
            runs[name] = resolve(changes, f"sonode[{name}]")
    return runs


def resolve_data(changes: dict, where: str = "settings") -> DataSettings:
    """The data stage's defaults overlaid with `changes` (a run's other settings ignored), checked."""
    return DataSettings().overlay(data_part(changes, Settings, DataSettings), where)


def make_data(settings: DataSettings, out: str | Path) -> PositionSeries:
    """The task's series, written to `out`."""
    data = POSITION_TASKS[settings.task](**settings.data, seed=settings.seed)
    data.save(out)
    return data


def position_loss(model, batch) -> tuple["jax.Array", dict]:
    """Mean squared error of the predicted positions at the observed times after t0 (x(t0) is given).

    `batch` = (ts (T,), x0 (N, dim), observed (N, T, dim)).
    """
    import jax.numpy as jnp

    ts, x0, observed = batch
    predicted, solution = model.positions(x0, ts)
    squared = (jnp.swapaxes(predicted, 0, 1)[:, 1:] - observed[:, 1:]) ** 2
    mse = jnp.mean(squared)
    return mse, {"rmse": jnp.sqrt(mse), "nfe_forward": solution.nfe_forward, "solver_status": solution.status}


def train(data_path: str | Path, settings: Settings, out_dir: str | Path, *, progress: bool = True):
    """Train the run's model on the task's series at `data_path` (full batch); write model.npz and
    history.jsonl to `out_dir`."""
    import jax.numpy as jnp

    data = PositionSeries.load(data_path)
    check_data_is_for(data_path, data.task, settings.task, "series")
    batch = tuple(jnp.asarray(a, DTYPE) for a in (data.ts, data.initial, data.observed))
    spec = settings.model_spec()
    train_new_model(
        position_loss,
        lambda step: batch,
        settings,
        out_dir,
        experiment=EXPERIMENT,
        kind="position_ode",
        spec=spec,
        description=f"train {settings.task}/{settings.model.name}",
        progress=progress,
        data_path=data_path,
    )


@filter_jit
def _positions(model, x0, ts, options):
    import jax.numpy as jnp

    positions, solution = model.positions(x0, ts, **options)
    return jnp.swapaxes(positions, 0, 1), jnp.swapaxes(solution.ys, 0, 1), solution.status


def run_model(model, x0: np.ndarray, ts: np.ndarray, solve_options: dict) -> tuple[np.ndarray, np.ndarray]:
    """(positions (N, T, dim), states (N, T, state)) of a trained model from x0 at ts[0], at evaluation
    tolerances."""
    import jax.numpy as jnp

    from .. import status_message

    positions, states, status = _positions(
        model, jnp.asarray(x0, DTYPE), jnp.asarray(ts, DTYPE), evaluation_options(solve_options)
    )
    if int(status):
        raise RuntimeError(f"the solve failed: {status_message(int(status))}")
    return np.asarray(positions), np.asarray(states)


def evaluate_model(model, data: PositionSeries, solve_options: dict) -> dict:
    """Errors of one trained model on its task (see `UNITS` for what each metric is)."""
    from ..models import parameter_count

    positions, _ = run_model(model, data.initial, data.all_ts, solve_options)
    observed = len(data.ts)
    metrics = {
        "train_rmse": rmse(positions[:, 1:observed], data.observed[:, 1:]),
        "train_rmse_true": rmse(positions[:, 1:observed], data.truth[:, 1:]),
        "parameters": parameter_count(model),
    }
    test, _ = run_model(model, data.test_initial, data.all_ts, solve_options)
    if data.task == "crossing":
        predicted, target = test[:, -1, 0], data.test_truth[:, -1, 0]
        moving = target != 0
        metrics["test_mse"] = float(np.mean((predicted - target) ** 2))
        metrics["test_sign_accuracy"] = float(np.mean(np.sign(predicted[moving]) == np.sign(target[moving])))
        metrics["solved"] = int(metrics["test_mse"] < CROSSING_SOLVED)
    else:
        metrics["extrapolation_rmse_true"] = rmse(positions[:, observed:], data.extrapolation_truth)
        metrics["test_rmse_true"] = rmse(test[:, 1:observed], data.test_truth[:, 1:observed])
        metrics["test_extrapolation_rmse_true"] = rmse(test[:, observed:], data.test_truth[:, observed:])
    return metrics


UNITS = {
    **HISTORY_UNITS,
    "train_rmse": "position units",
    "train_rmse_true": "position units",
    "parameters": "parameters",
    "test_mse": "position units^2",
    "test_sign_accuracy": "fraction",
    "solved": "1 if test_mse < 0.01",
    "extrapolation_rmse_true": "position units",
    "test_rmse_true": "position units",
    "test_extrapolation_rmse_true": "position units",
}


def evaluate(data_path: str | Path, run_dirs: list[str | Path], out_dir: str | Path) -> dict:
    """Evaluate the models in `run_dirs` on one task; write metrics.json, loss.png and trajectories.png
    (the crossing task: the learnt flows; the oscillator: fits and extrapolations) to `out_dir`."""
    import jax.numpy as jnp

    from .. import plots
    from ..models import load_model

    out_dir = Path(out_dir)
    data = PositionSeries.load(data_path)
    metrics, settings, models, histories = {}, {}, {}, {}
    for run_dir in map(Path, run_dirs):
        model, metadata = load_model(run_dir / "model.npz")
        run_settings = resolve(metadata["settings"])
        if run_settings.task != data.task:
            raise SettingsError(f"{run_dir} holds a model of {run_settings.task!r}, not of {data.task!r}")
        label = run_settings.model.name
        history = read_history(run_dir / "history.jsonl")
        run_metrics = evaluate_model(model, data, run_settings.solve.options())
        run_metrics.update(summarise_history(history))
        name = f"{data.task}/{label}"
        metrics[name], settings[name] = run_metrics, metadata["settings"]
        models[label], histories[label] = (model, run_settings.solve.options()), history
    record = write_metrics(
        out_dir / "metrics.json",
        experiment=EXPERIMENT,
        runs=metrics,
        settings=settings,
        units=UNITS,
        details={"task": data.task, "noise": data.noise, "data_settings": data.settings},
        dtype=f"data {data.truth.dtype}, training {jnp.dtype(DTYPE).name}",
    )
    plots.model_losses(
        {MODEL_LABELS.get(label, label): history for label, history in histories.items()},
        out_dir / "loss.png",
        loss_label="mean squared error of the positions",
        noise=data.noise,
        title=f"Training on the {data.task} task",
    )
    dense = np.linspace(data.all_ts[0], data.all_ts[-1], 200)
    starts = data.test_initial if data.task == "crossing" else data.initial
    curves = {
        MODEL_LABELS.get(label, label): run_model(model, starts, dense, options)
        for label, (model, options) in models.items()
    }
    if data.task == "crossing":
        plots.sonode_flows(dense, starts[:, 0], curves, out_dir / "trajectories.png")
    else:
        plots.sonode_trajectories(data, dense, curves, out_dir / "trajectories.png")
    return record


# The commands this experiment offers (docs/architecture.md, "Adding an experiment").
from ._registry import Experiment, data_command, evaluate_runs_command, train_command  # noqa: E402

DECLARATION = Experiment(
    EXPERIMENT,
    commands=(
        data_command(
            EXPERIMENT, make_data, resolve_data, "position-only series of a task (crossing, oscillator)"
        ),
        train_command(
            EXPERIMENT,
            train,
            resolve,
            "train a NODE, ANODE or SONODE on a position-only task",
            out="run folder (model.npz, history.jsonl)",
        ),
        evaluate_runs_command(EXPERIMENT, evaluate, "metrics and figures of a task's models"),
    ),
)
