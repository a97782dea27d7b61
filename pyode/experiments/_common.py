"""What every experiment does the same way: settings from files, a training run, its summary, metrics.

An experiment module has one shape (docs/architecture.md): a typed `Settings` with its
defaults, then data -> model -> `train_run` -> evaluation -> `write_metrics` and figures.
"""

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import CorruptFile, atomic_write, code_version, jax_device, read_json, versions, write_json
from ..train import TrainOptions
from ._settings import Section, SettingsError

if TYPE_CHECKING:
    from ..train import TrainState

STATE_DIR = "train-state"
"""A run's training state lives in this sub-folder of its output folder until the run finishes."""


def load_settings(resolve: Callable[[dict, str], Section], source: str | Path | dict | None) -> Section:
    """An experiment's settings: `resolve(changes, where)` of a settings file (JSON or YAML) or a dict.

    Errors name the file (and, for YAML syntax, the line).
    """
    if source is None or isinstance(source, dict):
        return resolve(source or {}, "settings")
    path = Path(source)
    if not path.is_file():
        raise SettingsError(f"settings file {path} does not exist")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            changes = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise SettingsError(
                f"{path}{where}: not valid YAML ({getattr(error, 'problem', error)})"
            ) from None
    else:
        changes = read_json(path)
    try:
        return resolve(changes or {}, "settings")
    except SettingsError as error:
        raise SettingsError(f"{path}: {error}") from None


def filter_jit(function: Callable) -> Callable:
    """`equinox.filter_jit(function)`, made on the first call, so that a module-level jitted function
    imports no JAX when its experiment is imported."""
    jitted = None

    @functools.wraps(function)
    def call(*args, **kwargs):
        nonlocal jitted
        if jitted is None:
            import equinox as eqx

            jitted = eqx.filter_jit(function)
        return jitted(*args, **kwargs)

    return call


def check_data_is_for(data_path: str | Path, held: str, wanted: str, what: str) -> None:
    """A SettingsError if the file at `data_path` holds `what` of `held` where the settings want `wanted`."""
    if held != wanted:
        raise SettingsError(f"{data_path} holds {held!r} {what}; the settings are for {wanted!r}")


def train_run(
    stepper,
    batch_at: Callable[[int], Any],
    settings: Section,
    out_dir: str | Path,
    *,
    options: TrainOptions,
    experiment: str,
    inputs: dict[str, str | Path],
    save_outputs: Callable[["TrainState", dict], None],
    observe: Callable[[int, Any], dict | None] | None = None,
) -> "TrainState":
    """Train under the run's identity (its settings, the digests of `inputs` and the code of
    `experiment`: `pyode.code_version`), then write its outputs.

    The state lives in `out_dir/train-state/` while training; `save_outputs(state, identity)`
    writes what the run leaves (model, extras), history.jsonl is written beside it, and the
    state is removed, so that a finished run leaves nothing to resume.
    """
    from ..train import clear_state, fit, run_identity

    out_dir = Path(out_dir)
    identity = run_identity(settings.to_dict(), inputs, code=code_version(experiment))
    state_dir = out_dir / STATE_DIR
    state = fit(
        stepper,
        batch_at,
        options,
        state_dir,
        identity=identity["digest"],
        observe=observe,
        hint=divergence_hint(settings, options),
    )
    save_outputs(state, identity)
    write_history(out_dir / "history.jsonl", state.history)
    clear_state(state_dir)
    return state


def divergence_hint(settings: Section, options: TrainOptions) -> str:
    """What to change when a run diverges: only settings that this run has and that apply to it."""
    clip = options.gradient_clip
    clipping = "set train.gradient_clip" if clip is None else f"lower train.gradient_clip (now {clip:g})"
    hint = f"Lower train.learning_rate (now {options.learning_rate:g}) or {clipping}"
    solve = getattr(settings, "solve", None)
    options = solve.options() if hasattr(solve, "options") else {}
    if "rtol" in options:
        budget = f" or raise solve.max_steps (now {solve.max_steps})" if hasattr(solve, "max_steps") else ""
        return f"{hint}; for a failed solve, loosen solve.rtol/atol{budget}"
    if "steps" in options:
        return f"{hint}; for an unstable solve, raise solve.steps (now {options['steps']})"
    if "dt" in options:
        return f"{hint}; for an unstable solve, lower solve.dt (now {options['dt']:g})"
    return hint


def train_model(
    model,
    loss_fn: Callable,
    batch_at: Callable[[int], Any],
    settings: Section,
    out_dir: str | Path,
    *,
    experiment: str,
    kind: str,
    spec: dict,
    options: TrainOptions,
    data_path: str | Path,
    observe: Callable[[int, Any], dict | None] | None = None,
    extra_outputs: Callable[["TrainState", Any], None] | None = None,
) -> "TrainState":
    """`train_run` of an Equinox model with optax: the trained model is written to `out_dir/model.npz`
    (`pyode.models.save_model` with its `kind`, build `spec`, settings and identity), then any
    `extra_outputs(state, model)`."""
    from ..models import save_model
    from ..train import OptaxStepper, make_optimizer

    out_dir = Path(out_dir)
    stepper = OptaxStepper(model, loss_fn, make_optimizer(options))

    def save_outputs(state: "TrainState", identity: dict) -> None:
        trained = stepper.model(state.params)
        metadata = {"experiment": experiment, "settings": settings.to_dict(), "identity": identity}
        save_model(out_dir / "model.npz", trained, kind=kind, spec=spec, metadata=metadata)
        if extra_outputs is not None:
            extra_outputs(state, trained)

    return train_run(
        stepper,
        batch_at,
        settings,
        out_dir,
        options=options,
        experiment=experiment,
        inputs={"data": data_path},
        save_outputs=save_outputs,
        observe=observe,
    )


def train_new_model(
    loss_fn: Callable, batch_at: Callable, settings: Section, out_dir: str | Path, **run
) -> "TrainState":
    """`train_model` of `build_model(run["kind"], run["spec"])` keyed by `settings.seed`, for
    `settings.train.steps` steps; `run` holds train_model's keywords but `options`, and the
    progress bar's `description` and `progress`."""
    import jax

    from ..models import build_model

    model = build_model(run["kind"], run["spec"], key=jax.random.PRNGKey(settings.seed))
    options = settings.train.options(
        steps=settings.train.steps, description=run.pop("description"), progress=run.pop("progress")
    )
    return train_model(model, loss_fn, batch_at, settings, out_dir, options=options, **run)


def write_history(path: str | Path, history: list[dict]) -> None:
    """One JSON record per training step, written atomically."""
    atomic_write(path, "".join(json.dumps(record) + "\n" for record in history))


def read_history(path: str | Path) -> list[dict]:
    """The records of a history.jsonl file: one JSON object per training step, with its loss and
    seconds (blank lines skipped). A line that is not one, or no step at all, is a CorruptFile naming
    the file (and the line)."""
    from .. import CorruptFile

    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise CorruptFile(f"{path} line {number} is not JSON ({error.msg})") from None
            if not (isinstance(record, dict) and "loss" in record and "seconds" in record):
                raise CorruptFile(
                    f"{path} line {number} is not a training step's record: a JSON object with its loss "
                    "and seconds"
                )
            records.append(record)
    if not records:
        raise CorruptFile(f"{path} is empty: it holds no training step")
    return records


def summarise_history(history: list[dict]) -> dict[str, float]:
    """Training cost from a history: steps, final loss, evaluations per step and time.

    Evaluation counts are means over the last tenth of the steps (at least 100): forward
    from every step there, backward from the counted steps among them.
    """
    window = history[-max(100, len(history) // 10) :]
    counted = [r["nfe_backward"] for r in window if "nfe_backward" in r]
    counted = counted or [r["nfe_backward"] for r in history if "nfe_backward" in r]
    seconds = np.array([r["seconds"] for r in history])
    return {
        "train_steps": len(history),
        "final_train_loss": history[-1]["loss"],
        "nfe_forward_per_step": float(np.mean([r["nfe_forward"] for r in window]))
        if "nfe_forward" in window[-1]
        else math.nan,
        "nfe_backward_per_step": float(np.mean(counted)) if counted else math.nan,
        "median_step_seconds": float(np.median(seconds[1:] if len(seconds) > 1 else seconds)),
        "first_step_seconds": float(seconds[0]),
        "train_seconds": float(seconds.sum()),
    }


EVALUATION_TOLERANCE = {"rtol": 1e-6, "atol": 1e-7}
"""Tolerances of an adaptive solve when a trained model is evaluated (tighter than in training)."""


def evaluation_options(solve_options: dict) -> dict:
    """The training solve options, with tighter tolerances when the solver is adaptive, 16 times the
    steps allowed, and `throw=False` (a failed solve reports its status)."""
    options = dict(solve_options, max_steps=16 * solve_options.get("max_steps", 4096), throw=False)
    if options.get("rtol") is not None:
        options.update(EVALUATION_TOLERANCE)
    return options


def rmse(predicted: np.ndarray, target: np.ndarray) -> float:
    """Root mean squared error over every coordinate."""
    return float(np.sqrt(np.mean((np.asarray(predicted, np.float64) - target) ** 2)))


HISTORY_UNITS = {
    "train_steps": "steps",
    "final_train_loss": "",
    "nfe_forward_per_step": "evaluations",
    "nfe_backward_per_step": "evaluations",
    "median_step_seconds": "s",
    "first_step_seconds": "s",
    "train_seconds": "s",
}


def write_metrics(
    path: str | Path,
    *,
    experiment: str,
    runs: dict[str, dict[str, Any]],
    settings: dict[str, dict],
    units: dict[str, str],
    details: dict | None = None,
    status: str = "ok",
    reason: str = "",
    dtype: str = "float32",
) -> dict:
    """Write an experiment's metrics.json in the one shape the summary and `pyode compare` read.

    `runs` maps a run's name (e.g. `spiral/node`) to its scalar metrics, `settings` to its
    resolved settings; `units` gives each metric's unit ("" for none); `details` holds what
    is not a scalar (per-epoch curves, a recovered matrix).
    """
    record = {
        "experiment": experiment,
        "status": status,
        **({"reason": reason} if reason else {}),
        "runs": [
            {"run": name, "metrics": _finite_or_none(metrics), "settings": settings.get(name, {})}
            for name, metrics in runs.items()
        ],
        "units": units,
        "details": details or {},
        "dtype": dtype,
        "device": jax_device(),
        "versions": versions(),
        "code": code_version(experiment),
    }
    write_json(path, record)
    return record


def write_run_metrics(
    out_dir: str | Path, experiment: str, run: str, metrics: dict, settings: dict, **options
) -> dict:
    """`write_metrics` of a single run into `out_dir`/metrics.json: its name, scalar metrics and settings."""
    path = Path(out_dir) / "metrics.json"
    return write_metrics(
        path, experiment=experiment, runs={run: metrics}, settings={run: settings}, **options
    )


def load_run(
    run_dir: str | Path, resolve: Callable[[dict], Section]
) -> tuple[Any, dict, Section, list[dict]]:
    """A finished training run in `run_dir`: its model, the model file's metadata, its settings (resolved
    by the experiment's `resolve`) and its history."""
    from ..models import load_model

    model, metadata = load_model(Path(run_dir) / "model.npz")
    return model, metadata, resolve(metadata["settings"]), read_history(Path(run_dir) / "history.jsonl")


def run_metrics(record: dict, run: str) -> dict[str, Any]:
    """The scalar metrics of one run of a metrics.json record."""
    for entry in record["runs"]:
        if entry["run"] == run:
            return entry["metrics"]
    raise KeyError(f"no run {run!r}; the record has {[r['run'] for r in record['runs']]}")


def _finite_or_none(metrics: dict) -> dict:
    """JSON has no NaN: a metric that is not a finite number is written as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


RECORD_SHAPE = {"experiment": str, "status": str, "runs": list, "units": dict}
"""The keys of a metrics.json record (`write_metrics`) that the summary and `compare` read."""
RUN_SHAPE = {"run": str, "metrics": dict, "settings": dict}
"""The keys of each of a record's runs."""
JSON_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "true or false", type(None): "null"}


def _json_name(kind: type) -> str:
    return JSON_NAMES.get(kind, "a number")


def shape_problem(value, shape: dict[str, type], prefix: str = "") -> str | None:
    """What keeps `value` from being an object with `shape`'s keys and types (None: nothing)."""
    if not isinstance(value, dict):
        return f"it is {_json_name(type(value))}, not an object"
    for key, kind in shape.items():
        if not isinstance(value.get(key), kind):
            return f"{prefix}{key} is missing or not {_json_name(kind)}"
    return None


def check_record(record, where: str) -> dict:
    """`record` if it has the shape of a metrics.json record, else a CorruptFile naming `where` and why."""
    problem = shape_problem(record, RECORD_SHAPE)
    for index, entry in enumerate(record["runs"] if problem is None else []):
        problem = problem or shape_problem(entry, RUN_SHAPE, f"runs[{index}].")
    if problem:
        raise CorruptFile(f"{where} is not an experiment's record: {problem}")
    return record


def load_records(paths: list[str | Path]) -> list[dict]:
    """The metrics.json records at `paths`, each checked and with the path it came from."""
    return [{**check_record(read_json(path), str(path)), "path": str(path)} for path in map(Path, paths)]
