"""Learning dynamics from noisy, irregularly sampled trajectories: Van der Pol, spirals, A to B.

Each system's data (`pyode.data.make_trajectories`, float64) is fitted by one or more
vector fields (a linear field or an MLP; float32) trained on random observation windows:
every step takes a batch of windows padded to the same number of points with a mask, and
integrates each at its own observation times from its first observation. Snapshots of the
field are saved as training proceeds, for the strip of snapshots and the animation.
"""

import functools
import inspect
import json
import math
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray

from ._checkpoint import load_metadata, load_tree, save_tree
from ._provenance import jax_device, versions
from ._solve import check_options, solve
from ._train import TrainOptions, fit, read_history, start_state_dir
from .data import DYNAMICS_GENERATORS, Trajectories, Windows, make_trajectories, sample_windows
from .models import MLPField

DTYPE = jnp.float32
FIELD_KINDS = ("linear", "mlp")

COMMON_SETTINGS = {
    "seed": 0,
    "data": {},
    "field": {"width": 32, "depth": 2, "activation": "tanh"},
    "window": {"batch": 8, "min_length": 1.0, "max_length": 5.0, "max_points": 32},
    "solve": {"solver": "dopri5", "adjoint": "checkpoint", "rtol": 1e-5, "atol": 1e-6, "max_steps": 4096},
    "train": {
        "steps": 1000,
        "learning_rate": 1e-2,
        "schedule": "cosine",
        "gradient_clip": 1.0,
        "checkpoint_every": 100,
    },
    "snapshots": 20,
    "fits": [{"name": "mlp", "field": "mlp"}],
}
"""Settings shared by every system: `data` holds the generator's options, `field` the MLP's
shape, `window` the sampling of training windows, `solve` the training solves, `snapshots`
how many snapshots of the field are kept over training, `fits` the fields to train
(`field`: linear or mlp; `trajectories`: fit only the first so many)."""

SYSTEM_SETTINGS = {
    "vdp": {
        "field": {"width": 64, "depth": 2, "activation": "tanh"},
        "window": {"batch": 32, "min_length": 0.5, "max_length": 2.0},
        "train": {"steps": 3000},
    },
    "linear_spiral": {"fits": [{"name": "linear", "field": "linear"}, {"name": "mlp", "field": "mlp"}]},
    "nn_spiral": {
        "field": {"width": 16, "depth": 2, "activation": "elu"},
        "window": {"batch": 16},
        "train": {"steps": 3000},
    },
    "regression_ab": {
        "window": {"batch": 8, "min_length": 1.0, "max_length": 1.0, "max_points": 2},
        "train": {"steps": 500},
        "fits": [
            {"name": "one_pair", "field": "mlp", "trajectories": 1},
            {"name": "pairs", "field": "mlp"},
        ],
    },
}
"""What each system changes of COMMON_SETTINGS."""

EVALUATION_TOLERANCE = {"rtol": 1e-6, "atol": 1e-7}


class LinearField(eqx.Module):
    """dz/dt = W z: a linear, time-invariant field."""

    matrix: Float[Array, "dim dim"]

    def __init__(self, dim: int, *, key: PRNGKeyArray):
        self.matrix = 0.1 * jax.random.normal(key, (dim, dim))

    def __call__(self, t: Float[Array, ""], y: Float[Array, "... dim"]) -> Float[Array, "... dim"]:
        return y @ self.matrix.T


def default_settings(system: str) -> dict:
    """COMMON_SETTINGS with the changes of `system`."""
    if system not in SYSTEM_SETTINGS:
        raise ValueError(f"unknown system {system!r}; choose one of {', '.join(SYSTEM_SETTINGS)}")
    return _overlay(COMMON_SETTINGS, SYSTEM_SETTINGS[system])


def resolve_settings(system: str, settings: dict) -> dict:
    """The defaults of `system` overlaid with `settings`, checked; a bad key or value is a ValueError."""
    resolved = _overlay(default_settings(system), settings)
    check_data_options(system, resolved["data"])
    solve_options = {k: v for k, v in resolved["solve"].items() if k != "max_steps"}
    check_options(**solve_options)
    window = resolved["window"]
    if not 0 < window["min_length"] <= window["max_length"] or window["max_points"] < 2:
        raise ValueError(f"need 0 < min_length <= max_length and max_points >= 2; got {window}")
    if resolved["snapshots"] < 1:
        raise ValueError(f"snapshots must be at least 1, got {resolved['snapshots']}")
    names = [f.get("name") for f in resolved["fits"]]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"fits need distinct names, got {names}")
    for entry in resolved["fits"]:
        unknown = set(entry) - {"name", "field", "trajectories"}
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)} in fit {entry.get('name')!r}")
        if entry.get("field") not in FIELD_KINDS:
            raise ValueError(f"fit {entry['name']!r}: field must be one of {FIELD_KINDS}")
        if entry.get("trajectories", 1) < 1:
            raise ValueError(f"fit {entry['name']!r}: trajectories must be at least 1")
    _training_options(resolved, progress=False, description="")
    return resolved


def _overlay(base: dict, changes: dict) -> dict:
    resolved = json.loads(json.dumps(base))
    for section, values in changes.items():
        if section not in resolved:
            raise ValueError(f"unknown settings section {section!r}; expected one of {sorted(resolved)}")
        if isinstance(resolved[section], dict) and isinstance(values, dict):
            unknown = set(values) - set(resolved[section])
            if unknown and section != "data":
                raise ValueError(f"unknown key(s) {sorted(unknown)} in settings section {section!r}")
            resolved[section].update(values)
        else:
            resolved[section] = values
    return resolved


def check_data_options(system: str, options: dict) -> None:
    """Raise a ValueError naming any option the generator of `system` does not take."""
    known = set(inspect.signature(DYNAMICS_GENERATORS[system]).parameters) - {"seed"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown data option(s) {sorted(unknown)} for {system!r}; known: {sorted(known)}")


def _training_options(settings: dict, *, progress: bool, description: str) -> TrainOptions:
    train = settings["train"]
    return TrainOptions(
        steps=train["steps"],
        learning_rate=train["learning_rate"],
        checkpoint_every=train["checkpoint_every"],
        schedule=train["schedule"],
        gradient_clip=train["gradient_clip"],
        progress=progress,
        description=description,
    )


def make_data(system: str, settings: dict) -> Trajectories:
    """The data of `system` as the (unresolved) settings describe: their `data` options and `seed`."""
    resolved = resolve_settings(system, settings)
    return make_trajectories(system, seed=resolved["seed"], **resolved["data"])


def fit_entry(settings: dict, name: str) -> dict:
    """The entry of the fit called `name`."""
    for entry in settings["fits"]:
        if entry["name"] == name:
            return entry
    raise ValueError(f"no fit named {name!r}; the settings have {[f['name'] for f in settings['fits']]}")


def build_field(settings: dict, fit_name: str, *, key: PRNGKeyArray) -> eqx.Module:
    """A fresh float32 field for the fit called `fit_name`."""
    if fit_entry(settings, fit_name)["field"] == "linear":
        field = LinearField(2, key=key)
    else:
        field = MLPField(2, **settings["field"], time_input=False, key=key)
    return to_float32(field)


def to_float32(tree):
    """`tree` with every floating-point array cast to float32."""
    return jax.tree_util.tree_map(lambda x: x.astype(DTYPE) if eqx.is_inexact_array(x) else x, tree)


def window_loss(field: eqx.Module, windows: tuple, solve_options: dict) -> tuple[jax.Array, dict]:
    """Mean squared error over the masked observations of a batch of windows.

    Each window is integrated at its own times from its first observation, which is left
    out of the mean (it is exact by construction).
    """
    ts, ys, mask = windows

    def integrate(window_ts, window_ys):
        solution = solve(field, window_ys[0], window_ts, **solve_options)
        return solution.ys, solution.nfe_forward

    predicted, nfe = jax.vmap(integrate)(ts, ys)
    mask = mask.at[:, 0].set(0.0)
    squared = jnp.sum((predicted - ys) ** 2, axis=-1) * mask
    mse = squared.sum() / (mask.sum() * ys.shape[-1])
    return mse, {"rmse": jnp.sqrt(mse), "nfe_forward": jnp.max(nfe)}


def windows_as_arrays(windows: Windows) -> tuple:
    """A batch of windows as float32 JAX arrays (ts, ys, mask)."""
    return tuple(jnp.asarray(a, dtype=DTYPE) for a in (windows.ts, windows.ys, windows.mask))


def fit_data(data: Trajectories, entry: dict) -> Trajectories:
    """The trajectories a fit trains on: all, or only the first `trajectories` of them."""
    count = entry.get("trajectories")
    if count is None:
        return data
    if count > len(data.ts):
        raise ValueError(f"fit {entry['name']!r} asks for {count} trajectories; the data hold {len(data.ts)}")
    return Trajectories(
        system=data.system,
        settings=data.settings,
        noise=data.noise,
        **{name: getattr(data, name)[:count] for name in TRAJECTORY_ARRAYS},
    )


TRAJECTORY_ARRAYS = ("initial_states", "ts", "ys", "ys_true", "extrapolation_ts", "extrapolation_ys_true")


def snapshot_steps(settings: dict) -> list[int]:
    """The steps after which a snapshot of the field is kept: 0, every ceil(steps / snapshots), the last."""
    steps = settings["train"]["steps"]
    every = math.ceil(steps / settings["snapshots"])
    return sorted(set(range(0, steps, every)) | {steps})


def train_dynamics(
    data_path: str | Path, settings: dict, fit_name: str, out_dir: str | Path, *, progress: bool = True
) -> eqx.Module:
    """Train the fit `fit_name` on the data at `data_path`; write model.eqx (+ .json),
    history.jsonl and snapshots.npz to out_dir (training state in out_dir/train-state/)."""
    data = Trajectories.load(data_path)
    settings = resolve_settings(data.system, settings)
    entry = fit_entry(settings, fit_name)
    data = fit_data(data, entry)
    out_dir = Path(out_dir)
    state_dir = start_state_dir(out_dir / "train-state", settings)
    snapshot_dir = state_dir / "snapshots"
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    seed = settings["seed"]
    window = settings["window"]
    solve_options = settings["solve"]

    def batch_at(step: int):
        rng = np.random.default_rng([seed, step])
        return windows_as_arrays(sample_windows(data, rng, **window))

    keep = set(snapshot_steps(settings))

    def take_snapshot(step: int, field: eqx.Module) -> None:
        if step in keep:
            flat, _ = ravel_pytree(eqx.filter(field, eqx.is_inexact_array))
            np.save(snapshot_dir / f"step_{step:07d}.npy", np.asarray(flat))

    field = build_field(settings, fit_name, key=jax.random.PRNGKey(seed))
    if not (state_dir / "checkpoint.eqx").exists():
        take_snapshot(0, field)
    options = _training_options(settings, progress=progress, description=f"train {data.system}/{fit_name}")
    loss = functools.partial(window_loss, solve_options=solve_options)
    field = fit(field, loss, batch_at, options, state_dir, on_step=take_snapshot)
    metadata = {"kind": "dynamics", "system": data.system, "fit": fit_name, "settings": settings}
    save_tree(out_dir / "model.eqx", field, metadata=metadata)
    (out_dir / "history.jsonl").write_text((state_dir / "history.jsonl").read_text())
    steps = sorted(keep)
    parameters = np.stack([np.load(snapshot_dir / f"step_{step:07d}.npy") for step in steps])
    np.savez(out_dir / "snapshots.npz", steps=np.array(steps), parameters=parameters)
    return field


def load_field(path: str | Path) -> tuple[eqx.Module, dict]:
    """A field saved by `train_dynamics` and its metadata (system, fit, settings)."""
    metadata = load_metadata(path)
    if metadata.get("kind") != "dynamics":
        raise ValueError(f"{path} does not hold a dynamics fit (kind {metadata.get('kind')!r})")
    like = build_field(metadata["settings"], metadata["fit"], key=jax.random.PRNGKey(0))
    return load_tree(path, like), metadata


def load_snapshots(path: str | Path, like: eqx.Module) -> list[tuple[int, eqx.Module]]:
    """(step, field) for every snapshot in a snapshots.npz, fields shaped like `like`."""
    params, static = eqx.partition(like, eqx.is_inexact_array)
    _, unravel = ravel_pytree(params)
    with np.load(path) as stored:
        return [
            (int(step), eqx.combine(unravel(jnp.asarray(flat, dtype=DTYPE)), static))
            for step, flat in zip(stored["steps"], stored["parameters"])
        ]


def _evaluation_options(solve_options: dict) -> dict:
    """The training solve options, with tighter tolerances when the solver is adaptive."""
    options = dict(solve_options, max_steps=16 * solve_options.get("max_steps", 4096))
    if options.get("rtol") is not None:
        options.update(EVALUATION_TOLERANCE)
    return options


@eqx.filter_jit
def _integrate_all(field, initial_states, times, options):
    return jax.vmap(lambda y0, ts: solve(field, y0, ts, t0=0.0, **options).ys)(initial_states, times)


def free_run(field: eqx.Module, data: Trajectories, solve_options: dict) -> tuple[np.ndarray, np.ndarray]:
    """The field's trajectories from the true initial states at t = 0, at the observation times
    and on the extrapolation window: arrays (trajectory, time, 2) and (trajectory, later, 2).

    A solve that fails (too many steps, as an early snapshot may need) gives NaN.
    """
    times = np.concatenate([data.ts, data.extrapolation_ts], axis=1)
    try:
        ys = np.asarray(
            _integrate_all(
                field,
                jnp.asarray(data.initial_states, DTYPE),
                jnp.asarray(times, DTYPE),
                _evaluation_options(solve_options),
            )
        )
    except RuntimeError:
        ys = np.full(times.shape + (2,), np.nan)
    return ys[:, : data.ts.shape[1]], ys[:, data.ts.shape[1] :]


def rmse(predicted: np.ndarray, target: np.ndarray) -> float:
    """Root mean squared error over every coordinate."""
    return float(np.sqrt(np.mean((np.asarray(predicted, np.float64) - target) ** 2)))


def evaluate_fit(field: eqx.Module, data: Trajectories, settings: dict, entry: dict) -> dict:
    """Trajectory errors of one fit, on the trajectories it was trained on.

    `train_rmse` compares the free run from the true initial states with the noisy
    observations of the training interval, `train_rmse_true` with the noise-free states,
    `extrapolation_rmse_true` the continuation past the training interval with the truth;
    `window_rmse` is the training objective's error on 64 fresh windows (each started at its
    first observation). A linear fit also reports its matrix beside the true one.
    """
    data = fit_data(data, entry)
    on_interval, later = free_run(field, data, settings["solve"])
    windows = sample_windows(
        data,
        np.random.default_rng([settings["seed"], settings["train"]["steps"]]),
        **dict(settings["window"], batch=64),
    )
    window_mse, _ = eqx.filter_jit(window_loss)(field, windows_as_arrays(windows), settings["solve"])
    metrics = {
        "field": entry["field"],
        "trajectories": len(data.ts),
        "train_rmse": rmse(on_interval[:, 1:], data.ys[:, 1:]),
        "train_rmse_true": rmse(on_interval[:, 1:], data.ys_true[:, 1:]),
        "extrapolation_rmse_true": rmse(later, data.extrapolation_ys_true),
        "window_rmse": float(np.sqrt(window_mse)),
    }
    metrics["train_rmse_over_noise"] = metrics["train_rmse"] / data.noise if data.noise else None
    if isinstance(field, LinearField):
        learned = np.asarray(field.matrix, np.float64)
        truth = np.asarray(data.true_field()(np.eye(2))).T
        metrics["learned_matrix"] = learned.tolist()
        metrics["true_matrix"] = truth.tolist()
        metrics["matrix_relative_error"] = float(np.linalg.norm(learned - truth) / np.linalg.norm(truth))
    return metrics


def summarise_history(history: list[dict]) -> dict:
    """Training cost and final batch error from the per-step history."""
    last = history[-min(50, len(history)) :]
    return {
        "train_steps": len(history),
        "final_batch_rmse_mean_last50": float(np.mean([r["rmse"] for r in last])),
        "mean_nfe_forward_last50": float(np.mean([r["nfe_forward"] for r in last])),
        "mean_nfe_backward_last50": float(np.mean([r["nfe_backward"] for r in last])),
        "median_step_seconds": float(np.median([r["seconds"] for r in history[1:] or history])),
        "train_seconds": float(np.sum([r["seconds"] for r in history])),
    }


def evaluate_dynamics(data_path: str | Path, run_dirs: list[str | Path], out_dir: str | Path) -> dict:
    """Evaluate the fits in `run_dirs` (folders written by `train_dynamics`) on one system's data;
    write metrics.json, loss.png, trajectories.png, field.png, snapshots.png and training.gif."""
    from . import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = Trajectories.load(data_path)
    runs = {}
    metrics = {"experiment": "dynamics", "system": data.system, "noise": data.noise}
    metrics["three_times_noise"] = 3 * data.noise
    metrics["extrapolation_window"] = [float(data.ts[:, -1].max()), float(data.extrapolation_ts.max())]
    metrics["fits"] = {}
    for run_dir in map(Path, run_dirs):
        tic = time.perf_counter()
        field, metadata = load_field(run_dir / "model.eqx")
        if metadata["system"] != data.system:
            raise ValueError(f"{run_dir} holds a fit of {metadata['system']!r}, not of {data.system!r}")
        settings = metadata["settings"]
        entry = fit_entry(settings, metadata["fit"])
        history = read_history(run_dir / "history.jsonl")
        fit_metrics = evaluate_fit(field, data, settings, entry)
        fit_metrics.update(summarise_history(history))
        snapshots = [
            (step, *free_run(snapshot, fit_data(data, entry), settings["solve"]))
            for step, snapshot in load_snapshots(run_dir / "snapshots.npz", field)
        ]
        fit_metrics["evaluation_seconds"] = time.perf_counter() - tic
        metrics["fits"][metadata["fit"]] = fit_metrics
        runs[metadata["fit"]] = {"field": field, "history": history, "snapshots": snapshots}
        metrics["settings"] = settings
    metrics["data_settings"] = data.settings
    metrics["dtype"] = {"data": str(data.ys.dtype), "training": jnp.dtype(DTYPE).name}
    metrics["device"] = jax_device()
    metrics["versions"] = versions()
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
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
    return metrics
