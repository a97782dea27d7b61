"""Latent ODEs on irregular time series: Chen et al. (2018, section 5) on the bi-directional spirals.

Data: noisy spirals, each observed at `observations` random times of a 100-step window
(`pyode.data.bidirectional_spirals`). Models: a latent ODE (a GRU run backwards over the
observations and their time gaps gives q(z0), an MLP field carries z, a decoder maps z to
the plane; trained on the ELBO) and an RNN baseline (a GRU reading each observation with the
time gap to the next, trained on one-step Gaussian likelihood). Evaluation: RMSE against the
noise-free truth on held-out spirals over the 100 times past the window (Table 2's
predictive RMSE), and figures: the paper's Figure 8 kind, latent trajectories, training
curves; across observation counts, RMSE against the number of observations.
"""

import dataclasses
import functools
from pathlib import Path

import numpy as np

from ..data import SpiralSeries, bidirectional_spirals, check_spiral_options
from ..models import ACTIVATION_NAMES
from ._common import (
    HISTORY_UNITS,
    evaluation_options,
    filter_jit,
    read_history,
    rmse,
    summarise_history,
    train_new_model,
    write_metrics,
)
from ._sections import FieldSettings, SolveSettings, StepTrainSettings
from ._settings import (
    Section,
    SettingsError,
    changes_at,
    data_part,
    listed,
    option,
    reported_at,
    section_keys,
)

EXPERIMENT = "latent"
DTYPE = np.float32
MODELS = ("latent_ode", "rnn")
MODEL_LABELS = {"latent_ode": "latent ODE", "rnn": "RNN"}


@dataclasses.dataclass(frozen=True)
class SpiralOptions(Section):
    """Options of `pyode.data.bidirectional_spirals` (its defaults: torchdiffeq's latent ODE example)."""

    spirals: int = option(1000, minimum=2)
    test_spirals: int = option(100, minimum=2)
    window: int = option(100, minimum=1)
    extrapolation: int = option(100, minimum=1)
    total_points: int = option(1000, minimum=3)
    noise: float = option(0.3, minimum=0)


@dataclasses.dataclass(frozen=True)
class DataSettings(Section):
    """A data set: the spirals (`data`), how many times each is observed at, the seed."""

    seed: int = option(0, minimum=0)
    observations: int = option(30, minimum=1)
    data: SpiralOptions = option(SpiralOptions())

    def validate(self, where: str) -> "DataSettings":
        with reported_at(f"{where}.data"):
            check_spiral_options(**{**self.data.to_dict(), "observations": self.observations})
        return self

    def generator_options(self) -> dict:
        return {**self.data.to_dict(), "observations": self.observations, "seed": self.seed}


@dataclasses.dataclass(frozen=True)
class NetworkSettings(Section):
    """Sizes (Chen et al.: a 25-unit recognition RNN, 4 latent dimensions, a decoder with one hidden
    layer of 20; the RNN baseline has 25 units). The field has the authors' example's two hidden
    layers of 20, with SiLU: the paper's one hidden layer of 20 (`depth: 1`) could not follow the
    clockwise spiral's widening end, and the example's ELU, whose second derivative jumps, fails
    the cross-validation's gradients (docs/latent.md)."""

    latent: int = option(4, minimum=1)
    encoder_hidden: int = option(25, minimum=1)
    field: FieldSettings = option(FieldSettings(width=20, depth=2, activation="silu"))
    decoder_width: int = option(20, minimum=1)
    decoder_activation: str = option("relu", choices=ACTIVATION_NAMES)
    rnn_hidden: int = option(25, minimum=1)


@dataclasses.dataclass(frozen=True)
class LatentTrain(StepTrainSettings):
    batch_size: int = option(100, minimum=1)


@dataclasses.dataclass(frozen=True)
class Settings(DataSettings):
    """One run: its data, which `model`, the networks' sizes, the latent solve, training."""

    model: str = option("latent_ode", choices=MODELS)
    network: NetworkSettings = option(NetworkSettings())
    solve: SolveSettings = option(SolveSettings(rtol=1e-3, atol=1e-4))
    train: LatentTrain = option(
        LatentTrain(
            steps=20000, learning_rate=1e-2, schedule="cosine", checkpoint_every=1000, count_every=500
        )
    )

    def validate(self, where: str) -> "Settings":
        super().validate(where)
        if self.train.batch_size > self.data.spirals:
            raise SettingsError(
                f"{where}.train.batch_size is {self.train.batch_size}; there are {self.data.spirals} spirals"
            )
        if self.network.field.time_input:
            raise SettingsError(
                f"{where}.network.field.time_input: the latent field is autonomous; set it false"
            )
        return self

    def model_spec(self) -> tuple[str, dict]:
        """(kind, spec) of this run's model for `pyode.models.build_model`."""
        if self.model == "rnn":
            return "recurrent_forecaster", {"obs_dim": 2, "hidden": self.network.rnn_hidden}
        field = self.network.field
        return "latent_ode", {
            "obs_dim": 2,
            "latent": self.network.latent,
            "encoder_hidden": self.network.encoder_hidden,
            "field_width": field.width,
            "field_depth": field.depth,
            "field_activation": field.activation,
            "decoder_width": self.network.decoder_width,
            "decoder_activation": self.network.decoder_activation,
            "solve_options": self.solve.options(),
        }


def resolve(changes: dict, where: str = "settings") -> Settings:
    """The defaults overlaid with `changes`, checked."""
    return Settings().overlay(changes, where)


def plan(section: dict, *, seed: int) -> dict[str, Settings]:
    """Every run of the config's `latent` section, by name `obs{n}/{model}`, resolved and checked.

    `observations` lists the observation counts, `models` the models; `data`, `network`,
    `solve` and `train` change every run; `model_train` maps a model to its own `train` changes.
    """
    section_keys(
        section,
        "latent",
        required=("observations", "models"),
        optional=("data", "network", "solve", "train", "model_train"),
    )
    counts, models = listed(section, "observations", "latent"), listed(section, "models", "latent")
    if "latent_ode" not in models:
        raise SettingsError(f"latent.models is {models}; it must include latent_ode (rnn is its baseline)")
    model_train = section_keys(
        changes_at(section, "model_train", "latent"), "latent.model_train", optional=MODELS
    )
    runs = {}
    for count in counts:
        for model in models:
            changes = {
                "seed": seed,
                "observations": count,
                "model": model,
                **{key: section[key] for key in ("data", "network", "solve") if key in section},
                "train": {
                    **changes_at(section, "train", "latent"),
                    **changes_at(model_train, model, "latent.model_train"),
                },
            }
            name = f"obs{count}/{model}"
            runs[name] = resolve(changes, f"latent[{name}]")
    return runs


def resolve_data(changes: dict, where: str = "settings") -> DataSettings:
    """The data stage's defaults overlaid with `changes` (a run's other settings ignored), checked."""
    return DataSettings().overlay(data_part(changes, Settings, DataSettings), where)


def make_data(settings: DataSettings, out: str | Path) -> SpiralSeries:
    """The spirals, written to `out`."""
    data = bidirectional_spirals(**settings.generator_options())
    data.save(out)
    return data


def observations(data: SpiralSeries, part: str, rows=slice(None)) -> tuple:
    """(window grid, times, values, grid index, mask) of a part's observations, as float32 JAX arrays."""
    import jax.numpy as jnp

    times, values, index, mask = (a[rows] for a in data.observed(part))
    grid = jnp.asarray(data.grid[: data.window], DTYPE)
    return (
        grid,
        jnp.asarray(times, DTYPE),
        jnp.asarray(values, DTYPE),
        jnp.asarray(index),
        jnp.asarray(mask, DTYPE),
    )


def loss_function(settings: Settings, noise: float):
    """The run's training loss: the latent ODE's negative ELBO or the RNN's negative log-likelihood.

    The likelihood's standard deviation is the data's noise (the torchdiffeq example's choice).
    """
    from ..models import latent_ode_loss, recurrent_loss

    scale = max(noise, 1e-3)
    if settings.model == "rnn":
        return functools.partial(recurrent_loss, noise=scale)
    return functools.partial(latent_ode_loss, noise=scale)


def train(data_path: str | Path, settings: Settings, out_dir: str | Path, *, progress: bool = True):
    """Train the run's model on the spirals at `data_path`; write model.npz and history.jsonl to `out_dir`."""
    import jax

    out_dir = Path(out_dir)
    data = SpiralSeries.load(data_path)
    if data.settings["observations"] != settings.observations:
        raise SettingsError(
            f"{data_path} observes {data.settings['observations']} times; "
            f"the settings ask for {settings.observations}"
        )
    count, batch_size, seed = len(data.train_truth), settings.train.batch_size, settings.seed
    if batch_size > count:
        raise SettingsError(f"train.batch_size is {batch_size}; {data_path} has {count} training spirals")
    grid, times, values, index, mask = observations(data, "train")
    base_key = jax.random.PRNGKey(seed)

    def batch_at(step: int):
        rows = np.random.default_rng([seed, step]).choice(count, batch_size, replace=False)
        return grid, times[rows], values[rows], index[rows], mask[rows], jax.random.fold_in(base_key, step)

    kind, spec = settings.model_spec()
    train_new_model(
        loss_function(settings, data.noise),
        batch_at,
        settings,
        out_dir,
        experiment=EXPERIMENT,
        kind=kind,
        spec=spec,
        description=f"train obs{settings.observations}/{settings.model}",
        progress=progress,
        data_path=data_path,
    )


@filter_jit
def _latent_predictions(model, times, values, mask, grid, options):
    import jax.numpy as jnp

    mean, _ = model.encode(times, values, mask)
    solution = model.latent_path(mean, grid, **options)
    return jnp.swapaxes(model.decode(solution.ys), 0, 1), jnp.swapaxes(solution.ys, 0, 1), solution.status


@filter_jit
def _recurrent_predictions(model, times, values, mask, queries):
    import jax
    import jax.numpy as jnp

    forecast = jax.vmap(lambda t, x, m: model.forecast(t, x, m, queries))(times, values, mask)
    one_step = jax.vmap(lambda t, x, m: model.read(t, x, m, jnp.max(t))[1])(times, values, mask)
    return forecast, one_step


def predict(model, data: SpiralSeries, part: str, solve_options: dict, rows=slice(None)) -> dict:
    """What a trained model says of a part's series (all, or `rows`): `extrapolation` (N, E, 2) past the
    window; `at_observations` (N, n, 2) at the observed times (the latent ODE's reconstruction,
    the RNN's one-step predictions, which start at the second observation: the first is NaN);
    for the latent ODE, `window` (N, W, 2) on the whole window and `latent` (N, G, latent).

    The latent ODE decodes the posterior mean of z0, solved at evaluation tolerances.
    """
    import jax.numpy as jnp

    from .. import status_message
    from ..models import LatentODE

    grid_window, times, values, index, mask = observations(data, part, rows)
    grid = jnp.asarray(data.grid, DTYPE)
    window = data.window
    if isinstance(model, LatentODE):
        on_grid, latent, status = _latent_predictions(
            model, times, values, mask, grid, evaluation_options(solve_options)
        )
        if int(status):
            raise RuntimeError(
                f"the latent solve failed on the {part} spirals: {status_message(int(status))}"
            )
        on_grid = np.asarray(on_grid)
        return {
            "extrapolation": on_grid[:, window:],
            "window": on_grid[:, :window],
            "at_observations": np.take_along_axis(on_grid, np.asarray(index)[..., None], axis=1),
            "latent": np.asarray(latent),
        }
    forecast, one_step = _recurrent_predictions(model, times, values, mask, grid[window:])
    one_step = np.asarray(one_step)
    at_observations = np.concatenate([np.full_like(one_step[:, :1], np.nan), one_step[:, :-1]], axis=1)
    return {"extrapolation": np.asarray(forecast), "at_observations": at_observations}


def evaluate_model(model, data: SpiralSeries, solve_options: dict) -> tuple[dict, dict]:
    """(metrics, held-out predictions) of one trained model.

    `test_extrapolation_rmse` (the paper's predictive RMSE, as measured here): held-out
    spirals, the model's predictions at the `extrapolation` times past the window against
    the noise-free truth, over both coordinates; `_clockwise` and `_counter_clockwise` on the
    spirals of one direction. `_noisy`: against noisy values there.
    `test_observed_rmse`: at the observed times against the truth. `test_window_rmse`
    (latent ODE): on every time of the window. `train_observed_rmse`: the first 100 training
    spirals, as the test one (beside it, a sign of overfitting).
    """
    from ..models import parameter_count

    window = data.window
    test = predict(model, data, "test", solve_options)
    train = predict(model, data, "train", solve_options, rows=slice(0, 100))
    metrics = {
        "test_extrapolation_rmse": rmse(test["extrapolation"], data.test_truth[:, window:]),
        "test_extrapolation_rmse_noisy": rmse(test["extrapolation"], data.test_noisy[:, window:]),
        "test_observed_rmse": _observed_rmse(test, data.test_truth, data.test_index),
        "train_observed_rmse": _observed_rmse(train, data.train_truth[:100], data.train_index[:100]),
        "test_extrapolation_rmse_clockwise": rmse(
            test["extrapolation"][data.test_clockwise], data.test_truth[data.test_clockwise, window:]
        ),
        "test_extrapolation_rmse_counter_clockwise": rmse(
            test["extrapolation"][~data.test_clockwise], data.test_truth[~data.test_clockwise, window:]
        ),
        "parameters": parameter_count(model),
    }
    if "window" in test:
        metrics["test_window_rmse"] = rmse(test["window"], data.test_truth[:, :window])
    return metrics, test


def _observed_rmse(predictions: dict, truth, index) -> float:
    """RMSE of the predictions at the observed times against the truth there (NaN ones left out)."""
    truth_at = np.take_along_axis(truth, index[..., None], axis=1)
    observed = ~np.isnan(predictions["at_observations"][..., 0])
    return rmse(predictions["at_observations"][observed], truth_at[observed])


UNITS = {
    **HISTORY_UNITS,
    "test_extrapolation_rmse": "plane units",
    "test_extrapolation_rmse_noisy": "plane units",
    "test_extrapolation_rmse_clockwise": "plane units",
    "test_extrapolation_rmse_counter_clockwise": "plane units",
    "test_observed_rmse": "plane units",
    "test_window_rmse": "plane units",
    "train_observed_rmse": "plane units",
    "parameters": "parameters",
    "final_batch_rmse": "plane units",
}


def evaluate(data_path: str | Path, run_dirs: list[str | Path], out_dir: str | Path) -> dict:
    """Evaluate the runs in `run_dirs` (one observation count) on the spirals at `data_path`; write
    metrics.json, spirals.png, latent.png and loss.png to `out_dir`."""
    import jax.numpy as jnp

    from .. import plots
    from ..models import load_model

    out_dir = Path(out_dir)
    data = SpiralSeries.load(data_path)
    count = data.settings["observations"]
    metrics, settings, predictions, histories = {}, {}, {}, {}
    for run_dir in map(Path, run_dirs):
        model, metadata = load_model(run_dir / "model.npz")
        run_settings = resolve(metadata["settings"])
        if run_settings.observations != count:
            raise SettingsError(
                f"{run_dir} was trained on {run_settings.observations} observations, not {count}"
            )
        name = f"obs{count}/{run_settings.model}"
        history = read_history(run_dir / "history.jsonl")
        run_metrics, predictions[run_settings.model] = evaluate_model(
            model, data, run_settings.solve.options()
        )
        run_metrics.update(summarise_history(history))
        run_metrics["final_batch_rmse"] = float(np.mean([r["rmse"] for r in history[-50:]]))
        metrics[name], settings[name], histories[run_settings.model] = (
            run_metrics,
            metadata["settings"],
            history,
        )
    record = write_metrics(
        out_dir / "metrics.json",
        experiment=EXPERIMENT,
        runs=metrics,
        settings=settings,
        units=UNITS,
        details={"observations": count, "noise": data.noise, "data_settings": data.settings},
        dtype=f"data {data.test_truth.dtype}, training {jnp.dtype(DTYPE).name}",
    )
    title = f"{count} of {data.window} times observed"
    plots.latent_spirals(data, predictions, out_dir / "spirals.png", title=title)
    if "latent_ode" in predictions:
        plots.latent_trajectories(
            predictions["latent_ode"]["latent"],
            data.test_clockwise,
            data.window,
            out_dir / "latent.png",
            title=title,
        )
    plots.model_losses(
        {MODEL_LABELS[model]: history for model, history in histories.items()},
        out_dir / "loss.png",
        loss_label="loss per series: negative ELBO (latent ODE), negative log-likelihood (RNN)",
        noise=data.noise,
        title=f"Training, {title}",
    )
    return record


def summarise(records: list[dict], out_dir: str | Path) -> list[dict]:
    """Across observation counts: rmse.png (held-out extrapolation RMSE against the number of
    observations, per model) and summary.md (the table of every run's main figures)."""
    from .. import atomic_write, plots

    out_dir = Path(out_dir)
    rows = []
    for record in records:
        count = record["details"]["observations"]
        for entry in record["runs"]:
            model = entry["run"].split("/")[1]
            rows.append({"observations": count, "model": model, **entry["metrics"]})
    rows.sort(key=lambda row: (row["observations"], row["model"]))
    plots.latent_rmse(rows, out_dir / "rmse.png")
    atomic_write(out_dir / "summary.md", _markdown_table(rows))
    return rows


def _markdown_table(rows: list[dict]) -> str:
    lines = [
        "# Latent ODE and RNN on the bi-directional spirals (held-out spirals)",
        "",
        "| observations | model | extrapolation RMSE (truth) | clockwise | counter-clockwise "
        "| extrapolation RMSE (noisy) | RMSE at observed times | parameters | steps | training time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['observations']} | {row['model']} | {row['test_extrapolation_rmse']:.4f} "
            f"| {row['test_extrapolation_rmse_clockwise']:.4f} "
            f"| {row['test_extrapolation_rmse_counter_clockwise']:.4f} "
            f"| {row['test_extrapolation_rmse_noisy']:.4f} | {row['test_observed_rmse']:.4f} "
            f"| {row['parameters']} | {row['train_steps']} | {row['train_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


# The commands this experiment offers (docs/architecture.md, "Adding an experiment").
from ._registry import (  # noqa: E402
    Command,
    Experiment,
    argument,
    data_command,
    evaluate_runs_command,
    train_command,
)


def _summary_command(args) -> None:
    from ._common import load_records

    summarise(load_records(args.metrics), args.out_dir)


DECLARATION = Experiment(
    EXPERIMENT,
    commands=(
        data_command(
            EXPERIMENT, make_data, resolve_data, "bi-directional spirals observed at irregular times"
        ),
        train_command(
            EXPERIMENT,
            train,
            resolve,
            "train a latent ODE or the RNN baseline on the spirals",
            out="run folder (model.npz, history.jsonl)",
        ),
        evaluate_runs_command(
            EXPERIMENT, evaluate, "metrics and figures of the models trained on one observation count"
        ),
        Command(
            "latent-summary",
            _summary_command,
            "RMSE against the number of observations, and a table",
            (
                argument("metrics", nargs="+", help="metrics.json files written by latent-evaluate"),
                argument("--out-dir", required=True),
            ),
        ),
    ),
)
