"""The A-to-B regression trained from scratch: NumPy solvers, the hand-written adjoint, NumPy Adam.

Data: start points A, standard normal in the plane, and targets B = A rotated by `rotation`.
Model: a `pyode.scratch.ScratchMLP` field. Training: the mean squared distance of the state
at t1 to B, its gradient by the continuous adjoint (or backprop through fixed steps), clipped,
then Adam, all in NumPy (`float64` by default), through the same training loop as every other
experiment. Evaluation: final loss and distance, evaluation counts, and two figures.
"""

import dataclasses
from pathlib import Path

import numpy as np

from .. import load_arrays, save_arrays
from ..scratch import (
    TABLEAUS,
    Adam,
    AdamState,
    ScratchMLP,
    adjoint_gradients,
    backprop_gradients,
    clip_by_global_norm,
    odeint,
    random_mlp,
)
from ._common import HISTORY_UNITS, read_history, summarise_history, train_run, write_metrics
from ._sections import FieldSettings, StepTrainSettings
from ._settings import Section, SettingsError, option

EXPERIMENT = "regression"
GRADIENT_METHODS = ("adjoint", "backprop")
ADAPTIVE_SOLVERS = tuple(name for name, tableau in TABLEAUS.items() if tableau.b_error is not None)


@dataclasses.dataclass(frozen=True)
class ScratchSolveSettings(Section):
    """The scratch solver: adaptive (`rtol`, `atol`) or `steps` fixed steps; the gradient method."""

    solver: str = option("dopri5", choices=TABLEAUS)
    rtol: float = option(1e-6, above=0)
    atol: float = option(1e-8, above=0)
    steps: int = option(20, minimum=1)
    gradient: str = option("adjoint", choices=GRADIENT_METHODS)

    def validate(self, where: str) -> "ScratchSolveSettings":
        if self.gradient == "backprop" and self.solver in ADAPTIVE_SOLVERS:
            raise SettingsError(
                f"{where}.gradient is 'backprop', which differentiates fixed steps: choose solver "
                f"{' or '.join(n for n in TABLEAUS if n not in ADAPTIVE_SOLVERS)}"
            )
        return self

    def options(self) -> dict:
        if self.solver in ADAPTIVE_SOLVERS and self.gradient == "adjoint":
            return {"rtol": self.rtol, "atol": self.atol}
        return {"steps": self.steps}


@dataclasses.dataclass(frozen=True)
class ScratchTrainSettings(StepTrainSettings):
    """NumPy Adam (`pyode.scratch.Adam`) at a constant `learning_rate`, after global-norm clipping."""

    def validate(self, where: str) -> "ScratchTrainSettings":
        unsupported = {"schedule": "constant", "optimizer": "adam", "weight_decay": 0.0}
        for key, value in unsupported.items():
            if getattr(self, key) != value:
                raise SettingsError(f"{where}.{key}: the scratch trainer supports only {value!r}")
        if self.gradient_clip is None:
            raise SettingsError(f"{where}.gradient_clip: the scratch trainer needs a clipping norm")
        return self


@dataclasses.dataclass(frozen=True)
class Settings(Section):
    """The regression: `pairs` points A carried to B = rotation(A) at `t1`, in `dtype`."""

    seed: int = option(0, minimum=0)
    dtype: str = option("float64", choices=("float64", "float32"))
    pairs: int = option(4, minimum=1)
    rotation: float = option(1.0)
    t1: float = option(1.0, above=0)
    field: FieldSettings = option(FieldSettings(width=16))
    solve: ScratchSolveSettings = option(ScratchSolveSettings())
    train: ScratchTrainSettings = option(
        ScratchTrainSettings(steps=300, learning_rate=0.02, gradient_clip=1.0)
    )


def resolve(changes: dict, where: str = "settings") -> Settings:
    """The defaults overlaid with `changes`, checked."""
    return Settings().overlay(changes, where)


def plan(section: dict, *, seed: int | None = None) -> dict[str, Settings]:
    """The one run of the config's `regression` section (its own seed wins over the global one)."""
    if seed is not None and isinstance(section, dict) and "seed" not in section:
        section = {**section, "seed": seed}
    return {"a_to_b": Settings().overlay(section, "regression")}


def regression_pairs(settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Start points A (pairs, 2) and targets B, A rotated by `rotation`."""
    rng = np.random.default_rng(settings.seed + 1)
    starts = rng.standard_normal((settings.pairs, 2)).astype(settings.dtype)
    angle = settings.rotation
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=starts.dtype)
    return starts, starts @ rotation.T


def make_field(settings: Settings) -> ScratchMLP:
    return random_mlp(2, **settings.field.to_dict(), seed=settings.seed, dtype=settings.dtype)


def gradients(field: ScratchMLP, starts: np.ndarray, targets: np.ndarray, settings: Settings):
    """The loss (mean squared distance at t1) and its gradients, as `pyode.scratch` computes them."""
    ts = np.array([0.0, settings.t1])

    def loss(ys):
        miss = ys[-1] - targets
        ys_bar = np.zeros_like(ys)
        ys_bar[-1] = 2 * miss / len(targets)
        return float(np.sum(miss**2) / len(targets)), ys_bar

    method, options = settings.solve.solver, settings.solve.options()
    if settings.solve.gradient == "backprop":
        return backprop_gradients(field, starts, ts, loss, method=method, **options)
    return adjoint_gradients(field, starts, ts, loss, method=method, **options)


@dataclasses.dataclass(frozen=True)
class _Step:
    params: np.ndarray
    opt_state: tuple
    loss: float
    metrics: dict
    failure: str | None


class ScratchStepper:
    """One step of the NumPy method: adjoint gradients, clipping, Adam. Counts are exact every step."""

    def __init__(self, field: ScratchMLP, starts, targets, settings: Settings):
        self.field, self.starts, self.targets, self.settings = field, starts, targets, settings
        self.adam = Adam(settings.train.learning_rate)

    def init(self):
        theta = self.field.flat_parameters()
        state = self.adam.init(theta)
        return theta, (state.first_moment, state.second_moment, np.asarray(state.count))

    def step(self, params, opt_state, batch) -> _Step:
        result = gradients(self.model(params), self.starts, self.targets, self.settings)
        metrics = {"nfe_forward": result.nfe_forward, "nfe_backward": result.nfe_backward}
        if not np.isfinite(result.loss) or not np.all(np.isfinite(result.grad_theta)):
            return _Step(
                params, opt_state, result.loss, metrics, f"the loss or its gradient became {result.loss}"
            )
        clipped, _ = clip_by_global_norm(result.grad_theta, self.settings.train.gradient_clip)
        first, second, count = opt_state
        params, state = self.adam.update(params, clipped, AdamState(first, second, int(count)))
        opt_state = (state.first_moment, state.second_moment, np.asarray(state.count))
        return _Step(params, opt_state, result.loss, metrics, None)

    def count(self, params, opt_state, batch) -> None:
        return None

    def model(self, params) -> ScratchMLP:
        return self.field.with_flat_parameters(np.asarray(params))


def _trajectories(field: ScratchMLP, starts: np.ndarray, t1: float) -> np.ndarray:
    ts = np.linspace(0.0, t1, 60)
    return odeint(field, starts, ts, method="dopri5", rtol=1e-8, atol=1e-10).ys


UNITS = {
    **HISTORY_UNITS,
    "initial_loss": "",
    "final_loss": "",
    "max_final_distance": "state units",
    "nfe_forward_total": "evaluations",
    "nfe_backward_total": "evaluations",
}


def run(settings: Settings, out_dir: str | Path, *, progress: bool = True) -> dict:
    """Train the field carrying each A to its B; write model.npz, history.jsonl, metrics.json,
    loss.png and trajectory.png to `out_dir`, and return the metrics record."""
    from .. import plots

    out_dir = Path(out_dir)
    starts, targets = regression_pairs(settings)
    initial = make_field(settings)
    stepper = ScratchStepper(initial, starts, targets, settings)
    options = settings.train.options(
        steps=settings.train.steps, description="regression from scratch", progress=progress
    )

    def save_outputs(state, identity):
        metadata = {"experiment": EXPERIMENT, "settings": settings.to_dict(), "identity": identity}
        save_arrays(out_dir / "model.npz", {"theta": state.params}, metadata)

    train_run(
        stepper,
        lambda step: None,
        settings,
        out_dir,
        options=options,
        experiment=EXPERIMENT,
        inputs={},
        save_outputs=save_outputs,
    )
    arrays, _ = load_arrays(out_dir / "model.npz")
    trained = stepper.model(arrays["theta"])
    final = gradients(trained, starts, targets, settings)
    history = read_history(out_dir / "history.jsonl")
    metrics = {
        **summarise_history(history),
        "initial_loss": history[0]["loss"],
        "final_loss": final.loss,
        "max_final_distance": float(np.max(np.linalg.norm(final.ys[-1] - targets, axis=-1))),
        "nfe_forward_total": int(sum(r["nfe_forward"] for r in history)),
        "nfe_backward_total": int(sum(r["nfe_backward"] for r in history)),
    }
    record = write_metrics(
        out_dir / "metrics.json",
        experiment=EXPERIMENT,
        runs={"a_to_b": metrics},
        settings={"a_to_b": settings.to_dict()},
        units=UNITS,
        dtype=settings.dtype,
    )
    steps = np.array([r["step"] for r in history] + [len(history)])
    losses = np.array([r["loss"] for r in history] + [final.loss])
    forward = np.array([r["nfe_forward"] for r in history] + [final.nfe_forward])
    backward = np.array([r["nfe_backward"] for r in history] + [final.nfe_backward])
    plots.plot_scratch_loss(steps, losses, forward, backward, out_dir / "loss.png")
    plots.plot_scratch_trajectory(
        _trajectories(initial, starts, settings.t1),
        _trajectories(trained, starts, settings.t1),
        starts,
        targets,
        out_dir / "trajectory.png",
    )
    return record


# The commands this experiment offers (docs/architecture.md, "Adding an experiment").
from ._registry import NO_PROGRESS, Command, Experiment, defaults_help, print_metrics, settings_of  # noqa: E402


def _regression_command(args) -> None:
    print_metrics(run(settings_of(resolve, args), args.out, progress=not args.no_progress))


DECLARATION = Experiment(
    EXPERIMENT,
    commands=(
        Command(
            "regression",
            _regression_command,
            "train the A-to-B regression with the NumPy adjoint",
            (NO_PROGRESS,),
            settings=defaults_help(EXPERIMENT),
            out="folder for metrics, history, figures",
        ),
    ),
)
