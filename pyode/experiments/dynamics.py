"""Learning dynamics from noisy, irregularly sampled trajectories: Van der Pol, spirals, A to B.

Data: each system's trajectories (`pyode.data.make_trajectories`, float64 truth, noisy
observations). Model: a vector field per fit (linear or an MLP, float32). Training: random
observation windows, each integrated at its own times from its first observation; snapshots
of the field are kept as training proceeds. Evaluation: free runs from the true initial
states against the observations, the truth and an extrapolation window, and five figures.
"""

import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import load_arrays, save_arrays
from ..data import (
    DYNAMICS_GENERATORS,
    Trajectories,
    Windows,
    check_trajectory_options,
    make_trajectories,
    sample_windows,
)
from ._common import (
    HISTORY_UNITS,
    check_data_is_for,
    evaluation_options,
    filter_jit,
    read_history,
    rmse,
    summarise_history,
    train_model,
    write_metrics,
)
from ._sections import FieldSettings, GeneratedData, SolveSettings, StepTrainSettings
from ._settings import (
    Section,
    SettingsError,
    data_part,
    named_entries,
    option,
    section_keys,
)

if TYPE_CHECKING:
    import equinox as eqx
    import jax

EXPERIMENT = "dynamics"
DTYPE = np.float32
FIELD_KINDS = ("linear", "mlp")


@dataclasses.dataclass(frozen=True)
class WindowSettings(Section):
    """Training windows: `batch` of them per step, `min_length`..`max_length` long, at most `max_points`."""

    batch: int = option(8, minimum=1)
    min_length: float = option(1.0, above=0)
    max_length: float = option(5.0, above=0)
    max_points: int = option(32, minimum=2)

    def validate(self, where: str) -> "WindowSettings":
        if self.min_length > self.max_length:
            raise SettingsError(
                f"{where}: min_length ({self.min_length}) is greater than max_length ({self.max_length})"
            )
        return self


@dataclasses.dataclass(frozen=True)
class FitSettings(Section):
    """One field fitted to a system: `linear` or `mlp`, on all trajectories or the first `trajectories`."""

    name: str = option("mlp")
    field: str = option("mlp", choices=FIELD_KINDS)
    trajectories: int | None = option(None, minimum=1)


@dataclasses.dataclass(frozen=True)
class DataSettings(GeneratedData):
    """A system's trajectories: the generator (`system`), its options (`data`) and the seed."""

    seed: int = option(0, minimum=0)
    system: str = option("vdp", choices=DYNAMICS_GENERATORS)

    def check_options(self) -> None:
        check_trajectory_options(self.system, self.data)


@dataclasses.dataclass(frozen=True)
class Settings(DataSettings):
    """One fit on one system: its data, the MLP's shape, windows, solve, training.

    `snapshots`: how many copies of the field are kept over training (for the strip and the
    animation).
    """

    field: FieldSettings = option(FieldSettings(width=32, depth=2, activation="tanh"))
    window: WindowSettings = option(WindowSettings())
    solve: SolveSettings = option(SolveSettings(rtol=1e-5, atol=1e-6))
    train: StepTrainSettings = option(
        StepTrainSettings(steps=1000, learning_rate=1e-2, schedule="cosine", gradient_clip=1.0)
    )
    snapshots: int = option(20, minimum=1)
    fit: FitSettings = option(FitSettings())

    def validate(self, where: str) -> "Settings":
        super().validate(where)
        if self.field.time_input:
            raise SettingsError(f"{where}.field.time_input: the dynamics fields are autonomous; set it false")
        return self

    def model(self) -> tuple[str, dict]:
        """(kind, spec) of this fit's field for `pyode.models.build_model`."""
        if self.fit.field == "linear":
            return "linear_field", {"dim": 2}
        return "mlp_field", {"dim": 2, **self.field.to_dict()}

    def solve_options(self) -> dict:
        return {**self.solve.options(), "throw": False}


SYSTEM_DEFAULTS = {
    "vdp": {
        "field": {"width": 64, "depth": 2, "activation": "tanh"},
        "window": {"batch": 32, "min_length": 0.5, "max_length": 2.0},
        "train": {"steps": 3000},
    },
    "linear_spiral": {},
    "nn_spiral": {
        "field": {"width": 16, "depth": 2, "activation": "elu"},
        "window": {"batch": 16},
        "train": {"steps": 3000},
    },
    "regression_ab": {
        "window": {"batch": 8, "min_length": 1.0, "max_length": 1.0, "max_points": 2},
        "train": {"steps": 500},
    },
}
"""What each system changes of `Settings`' defaults."""

DEFAULT_FITS = {
    "linear_spiral": [{"name": "linear", "field": "linear"}, {"name": "mlp", "field": "mlp"}],
    "regression_ab": [
        {"name": "one_pair", "field": "mlp", "trajectories": 1},
        {"name": "pairs", "field": "mlp"},
    ],
}
"""The fits a system runs when its config entry names none (one MLP otherwise)."""


def resolve(changes: dict, where: str = "settings") -> Settings:
    """The system's defaults (`SYSTEM_DEFAULTS`) overlaid with `changes` (which name the system)."""
    system = changes.get("system", Settings.system)
    base = Settings().overlay({"system": system}, where)
    return base.overlay(SYSTEM_DEFAULTS[system], where).overlay(changes, where)


def plan(section: dict, *, seed: int) -> dict[str, Settings]:
    """Every fit of the config's `dynamics` section, by name `system/fit`, resolved and checked."""
    section_keys(section, "dynamics", required=("systems",))
    runs = {}
    for entry in named_entries(section, "systems", "dynamics"):
        system = entry["name"]
        where = f"dynamics.systems[{system}]"
        fits = named_entries(
            {"fits": DEFAULT_FITS.get(system, [{"name": "mlp", "field": "mlp"}]), **entry}, "fits", where
        )
        common = {k: v for k, v in entry.items() if k not in ("name", "fits")}
        for fit in fits:
            name = f"{system}/{fit['name']}"
            runs[name] = resolve({"seed": seed, "system": system, **common, "fit": fit}, f"dynamics[{name}]")
    return runs


def resolve_data(changes: dict, where: str = "settings") -> DataSettings:
    """The data stage's defaults overlaid with `changes` (a run's other settings ignored), checked."""
    return DataSettings().overlay(data_part(changes, Settings, DataSettings), where)


def make_data(settings: DataSettings, out: str | Path) -> Trajectories:
    """The system's trajectories, written to `out`."""
    data = make_trajectories(settings.system, seed=settings.seed, **settings.data)
    data.save(out)
    return data


def window_loss(field: "eqx.Module", windows: tuple, solve_options: dict) -> tuple["jax.Array", dict]:
    """Mean squared error over the masked observations of a batch of windows.

    Each window is integrated at its own times from its first observation, which is left
    out of the mean (it is exact by construction).
    """
    import jax
    import jax.numpy as jnp

    from .. import solve

    ts, ys, mask = windows

    def integrate(window_ts, window_ys):
        solution = solve(field, window_ys[0], window_ts, **solve_options)
        return solution.ys, solution.nfe_forward, solution.status

    predicted, nfe, status = jax.vmap(integrate)(ts, ys)
    mask = mask.at[:, 0].set(0.0)
    squared = jnp.sum((predicted - ys) ** 2, axis=-1) * mask
    mse = squared.sum() / (mask.sum() * ys.shape[-1])
    return mse, {"rmse": jnp.sqrt(mse), "nfe_forward": jnp.max(nfe), "solver_status": jnp.max(status)}


def windows_as_arrays(windows: Windows) -> tuple:
    """A batch of windows as float32 JAX arrays (ts, ys, mask)."""
    import jax.numpy as jnp

    return tuple(jnp.asarray(a, dtype=DTYPE) for a in (windows.ts, windows.ys, windows.mask))


def fit_data(data: Trajectories, fit: FitSettings) -> Trajectories:
    """The trajectories a fit trains on: all, or only the first `trajectories` of them."""
    if fit.trajectories is None:
        return data
    if fit.trajectories > len(data.ts):
        raise SettingsError(
            f"fit {fit.name!r} asks for {fit.trajectories} trajectories; the data hold {len(data.ts)}"
        )
    return dataclasses.replace(
        data, **{name: getattr(data, name)[: fit.trajectories] for name in TRAJECTORY_ARRAYS}
    )


TRAJECTORY_ARRAYS = ("initial_states", "ts", "ys", "ys_true", "extrapolation_ts", "extrapolation_ys_true")


def snapshot_steps(settings: Settings) -> list[int]:
    """The steps after which a snapshot of the field is kept: 0, every ceil(steps / snapshots), the last."""
    steps = settings.train.steps
    every = math.ceil(steps / settings.snapshots)
    return sorted(set(range(0, steps, every)) | {steps})


def train(data_path: str | Path, settings: Settings, out_dir: str | Path, *, progress: bool = True):
    """Train the fit on the data at `data_path`; write model.npz, history.jsonl and snapshots.npz."""
    import equinox as eqx
    import jax
    from jax.flatten_util import ravel_pytree

    from ..models import build_model

    out_dir = Path(out_dir)
    data = Trajectories.load(data_path)
    check_data_is_for(data_path, data.system, settings.system, "data")
    data = fit_data(data, settings.fit)
    seed, window = settings.seed, settings.window.to_dict()

    def batch_at(step: int):
        return windows_as_arrays(sample_windows(data, np.random.default_rng([seed, step]), **window))

    keep = set(snapshot_steps(settings))

    def snapshot(step: int, field: "eqx.Module") -> dict | None:
        if step in keep:
            flat, _ = ravel_pytree(eqx.filter(field, eqx.is_inexact_array))
            return {"step": step, "parameters": np.asarray(flat).tolist()}
        return None

    kind, spec = settings.model()
    field = build_model(kind, spec, key=jax.random.PRNGKey(seed))
    options = settings.train.options(
        steps=settings.train.steps,
        description=f"train {settings.system}/{settings.fit.name}",
        progress=progress,
    )
    loss = functools.partial(window_loss, solve_options=settings.solve_options())

    def save_snapshots(state, trained):
        steps = np.array([s["step"] for s in state.observations])
        parameters = np.array([s["parameters"] for s in state.observations], dtype=np.float32)
        arrays = {"steps": steps, "parameters": parameters}
        save_arrays(out_dir / "snapshots.npz", arrays, {"kind": "snapshots"})

    train_model(
        field,
        loss,
        batch_at,
        settings,
        out_dir,
        experiment=EXPERIMENT,
        kind=kind,
        spec=spec,
        options=options,
        data_path=data_path,
        observe=snapshot,
        extra_outputs=save_snapshots,
    )


def load_snapshots(path: str | Path, like: "eqx.Module") -> list[tuple[int, "eqx.Module"]]:
    """(step, field) for every snapshot in a snapshots.npz, fields shaped like `like`."""
    import equinox as eqx
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    arrays, _ = load_arrays(path)
    params, static = eqx.partition(like, eqx.is_inexact_array)
    _, unravel = ravel_pytree(params)
    return [
        (int(step), eqx.combine(unravel(jnp.asarray(flat, dtype=DTYPE)), static))
        for step, flat in zip(arrays["steps"], arrays["parameters"])
    ]


@filter_jit
def _integrate_all(field, initial_states, times, options):
    import jax
    import jax.numpy as jnp

    from .. import solve

    solutions = jax.vmap(lambda y0, ts: solve(field, y0, ts, t0=0.0, **options))(initial_states, times)
    return solutions.ys, jnp.max(solutions.status)


def free_run(field: "eqx.Module", data: Trajectories, solve_options: dict) -> tuple[np.ndarray, np.ndarray]:
    """The field's trajectories from the true initial states at t = 0, at the observation times
    and on the extrapolation window: arrays (trajectory, time, 2) and (trajectory, later, 2).

    A solve that fails (too many steps, as an early snapshot may need) gives NaN.
    """
    import jax.numpy as jnp

    times = np.concatenate([data.ts, data.extrapolation_ts], axis=1)
    ys, status = _integrate_all(
        field,
        jnp.asarray(data.initial_states, DTYPE),
        jnp.asarray(times, DTYPE),
        evaluation_options(solve_options),
    )
    ys = np.asarray(ys) if int(status) == 0 else np.full(times.shape + (2,), np.nan)
    return ys[:, : data.ts.shape[1]], ys[:, data.ts.shape[1] :]


def evaluate_fit(field: "eqx.Module", data: Trajectories, settings: Settings) -> tuple[dict, dict]:
    """Trajectory errors of one fit, on the trajectories it was trained on: (metrics, details).

    `train_rmse` compares the free run from the true initial states with the noisy
    observations of the training interval, `train_rmse_true` with the noise-free states,
    `extrapolation_rmse_true` the continuation past the training interval with the truth;
    `window_rmse` is the training objective's error on 64 fresh windows (each started at its
    first observation). A linear fit also reports its matrix beside the true one.
    """
    import equinox as eqx

    from .. import status_message
    from ..models import LinearField

    data = fit_data(data, settings.fit)
    on_interval, later = free_run(field, data, settings.solve_options())
    windows = sample_windows(
        data,
        np.random.default_rng([settings.seed, settings.train.steps]),
        **dict(settings.window.to_dict(), batch=64),
    )
    window_mse, aux = eqx.filter_jit(window_loss)(field, windows_as_arrays(windows), settings.solve_options())
    if int(aux["solver_status"]):
        raise RuntimeError(
            f"the solver failed on the evaluation windows: {status_message(int(aux['solver_status']))}"
        )
    metrics = {
        "trajectories": len(data.ts),
        "train_rmse": rmse(on_interval[:, 1:], data.ys[:, 1:]),
        "train_rmse_true": rmse(on_interval[:, 1:], data.ys_true[:, 1:]),
        "extrapolation_rmse_true": rmse(later, data.extrapolation_ys_true),
        "window_rmse": float(np.sqrt(window_mse)),
    }
    metrics["train_rmse_over_noise"] = metrics["train_rmse"] / data.noise if data.noise else math.nan
    details = {}
    if isinstance(field, LinearField):
        learned = np.asarray(field.matrix, np.float64)
        truth = np.asarray(data.true_field()(np.eye(2))).T
        details = {"learned_matrix": learned.tolist(), "true_matrix": truth.tolist()}
        metrics["matrix_relative_error"] = float(np.linalg.norm(learned - truth) / np.linalg.norm(truth))
    return metrics, details


UNITS = {
    **HISTORY_UNITS,
    "trajectories": "trajectories",
    "train_rmse": "state units",
    "train_rmse_true": "state units",
    "extrapolation_rmse_true": "state units",
    "window_rmse": "state units",
    "train_rmse_over_noise": "x noise",
    "matrix_relative_error": "fraction",
    "final_batch_rmse": "state units",
    "evaluation_seconds": "s",
}


def evaluate(data_path: str | Path, run_dirs: list[str | Path], out_dir: str | Path) -> dict:
    """Evaluate the fits in `run_dirs` (folders written by `train`) on one system's data;
    write metrics.json, loss.png, trajectories.png, field.png, snapshots.png and training.gif."""
    import jax.numpy as jnp

    from .. import plots
    from ..models import load_model

    out_dir = Path(out_dir)
    data = Trajectories.load(data_path)
    runs, metrics, settings, details = {}, {}, {}, {}
    for run_dir in map(Path, run_dirs):
        tic = time.perf_counter()
        field, metadata = load_model(run_dir / "model.npz")
        fit_settings = resolve(metadata["settings"])
        if fit_settings.system != data.system:
            raise SettingsError(f"{run_dir} holds a fit of {fit_settings.system!r}, not of {data.system!r}")
        name = f"{data.system}/{fit_settings.fit.name}"
        history = read_history(run_dir / "history.jsonl")
        fit_metrics, details[name] = evaluate_fit(field, data, fit_settings)
        fit_metrics.update(summarise_history(history))
        fit_metrics["final_batch_rmse"] = float(np.mean([r["rmse"] for r in history[-50:]]))
        snapshots = [
            (step, *free_run(snapshot, fit_data(data, fit_settings.fit), fit_settings.solve_options()))
            for step, snapshot in load_snapshots(run_dir / "snapshots.npz", field)
        ]
        fit_metrics["evaluation_seconds"] = time.perf_counter() - tic
        metrics[name], settings[name] = fit_metrics, metadata["settings"]
        runs[fit_settings.fit.name] = {"field": field, "history": history, "snapshots": snapshots}
    details["noise"] = data.noise
    details["extrapolation_window"] = [float(data.ts[:, -1].max()), float(data.extrapolation_ts.max())]
    details["data_settings"] = data.settings
    record = write_metrics(
        out_dir / "metrics.json",
        experiment=EXPERIMENT,
        runs=metrics,
        settings=settings,
        units=UNITS,
        details=details,
        dtype=f"data {data.ys.dtype}, training {jnp.dtype(DTYPE).name}",
    )
    title = data.system.replace("_", " ")
    plots.dynamics_loss(
        {n: r["history"] for n, r in runs.items()}, data.noise, out_dir / "loss.png", title=title
    )
    final = {name: run["snapshots"][-1][1:] for name, run in runs.items()}
    plots.dynamics_trajectories(data, final, out_dir / "trajectories.png", title=title)
    plots.dynamics_fields(data, {n: r["field"] for n, r in runs.items()}, out_dir / "field.png", title=title)
    snapshots = {name: run["snapshots"] for name, run in runs.items()}
    plots.dynamics_snapshots(data, snapshots, out_dir / "snapshots.png", title=title)
    plots.dynamics_animation(data, snapshots, out_dir / "training.gif", title=title)
    return record


# The commands this experiment offers (docs/architecture.md, "Adding an experiment").
from ._registry import Experiment, data_command, evaluate_runs_command, train_command  # noqa: E402

DECLARATION = Experiment(
    EXPERIMENT,
    commands=(
        data_command(EXPERIMENT, make_data, resolve_data, "noisy trajectories of a system, with the truth"),
        train_command(
            EXPERIMENT,
            train,
            resolve,
            "fit a vector field to trajectory windows",
            out="run folder (model.npz, history.jsonl)",
        ),
        evaluate_runs_command(EXPERIMENT, evaluate, "metrics and figures of a system's fits"),
    ),
)
