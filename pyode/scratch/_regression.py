"""The A-to-B regression task, trained end to end with the scratch solvers, adjoint and Adam."""

import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._field import ACTIVATIONS, ScratchMLP, random_mlp
from ._gradients import Gradients, adjoint_gradients, backprop_gradients
from ._optim import Adam, clip_by_global_norm
from ._solvers import TABLEAUS, odeint

DEFAULT_REGRESSION_SETTINGS: dict[str, Any] = {
    "seed": 0,
    "dtype": "float64",
    "num_pairs": 4,
    "rotation": 1.0,
    "t1": 1.0,
    "width": 16,
    "depth": 1,
    "activation": "tanh",
    "time_input": False,
    "solver": "dopri5",
    "rtol": 1e-6,
    "atol": 1e-8,
    "solver_steps": 20,
    "gradient": "adjoint",
    "train_steps": 300,
    "learning_rate": 0.02,
    "clip_norm": 1.0,
}
"""Settings of `run_regression`. Start points A are standard normal in the plane (seed + 1);
targets B are A rotated by `rotation` radians; the field is an MLP (seed). dopri5 is
adaptive with rtol/atol; euler and rk4 take `solver_steps` fixed steps. `gradient` is
`adjoint` (continuous) or `backprop` (through the fixed steps)."""

GRADIENT_METHODS = ("adjoint", "backprop")
ADAPTIVE_SOLVERS = tuple(name for name, tableau in TABLEAUS.items() if tableau.b_error is not None)


def regression_settings(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The defaults updated with `settings`; a ValueError names any unknown or invalid key."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(DEFAULT_REGRESSION_SETTINGS))
    if unknown:
        raise ValueError(
            f"unknown scratch setting(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(DEFAULT_REGRESSION_SETTINGS)}"
        )
    merged = {**DEFAULT_REGRESSION_SETTINGS, **settings}
    choices = {
        "dtype": ("float64", "float32"),
        "activation": tuple(ACTIVATIONS),
        "solver": tuple(TABLEAUS),
        "gradient": GRADIENT_METHODS,
    }
    for key, allowed in choices.items():
        if merged[key] not in allowed:
            raise ValueError(
                f"scratch setting {key!r} must be one of {', '.join(allowed)}; got {merged[key]!r}"
            )
    positive = ("num_pairs", "t1", "width", "solver_steps", "train_steps", "learning_rate", "clip_norm")
    for key in positive + (("rtol", "atol") if merged["solver"] in ADAPTIVE_SOLVERS else ()):
        if not merged[key] > 0:
            raise ValueError(f"scratch setting {key!r} must be positive; got {merged[key]!r}")
    if merged["depth"] < 0:
        raise ValueError(f"scratch setting 'depth' must be at least 0; got {merged['depth']!r}")
    if merged["gradient"] == "backprop" and merged["solver"] in ADAPTIVE_SOLVERS:
        raise ValueError("gradient 'backprop' differentiates fixed steps: choose solver euler or rk4")
    return merged


def regression_pairs(settings: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Start points A (num_pairs, 2) and targets B, A rotated by settings['rotation']."""
    rng = np.random.default_rng(settings["seed"] + 1)
    starts = rng.standard_normal((settings["num_pairs"], 2)).astype(settings["dtype"])
    angle = settings["rotation"]
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=starts.dtype)
    return starts, starts @ rotation.T


def _gradients(field: ScratchMLP, starts, targets, settings) -> Gradients:
    ts = np.array([0.0, settings["t1"]])

    def loss(ys):
        miss = ys[-1] - targets
        ys_bar = np.zeros_like(ys)
        ys_bar[-1] = 2 * miss / len(targets)
        return float(np.sum(miss**2) / len(targets)), ys_bar

    if settings["gradient"] == "backprop":
        return backprop_gradients(
            field, starts, ts, loss, method=settings["solver"], steps=settings["solver_steps"]
        )
    if settings["solver"] in ADAPTIVE_SOLVERS:
        options = {"rtol": settings["rtol"], "atol": settings["atol"]}
    else:
        options = {"steps": settings["solver_steps"]}
    return adjoint_gradients(field, starts, ts, loss, method=settings["solver"], **options)


def _trajectories(field: ScratchMLP, starts: np.ndarray, t1: float) -> np.ndarray:
    ts = np.linspace(0.0, t1, 60)
    return odeint(field, starts, ts, method="dopri5", rtol=1e-8, atol=1e-10).ys


def run_regression(settings: dict[str, Any] | None, out_dir: str | Path) -> dict[str, Any]:
    """Train a field carrying each A to its B at t1 with Adam and gradient clipping.

    Writes metrics.json, history.csv (step, loss, nfe_forward, nfe_backward), loss.png
    and trajectory.png into `out_dir`, and returns the metrics.
    """
    from pyode.plots._scratch import plot_scratch_loss, plot_scratch_trajectory

    settings = regression_settings(settings)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    starts, targets = regression_pairs(settings)
    field = random_mlp(
        2,
        width=settings["width"],
        depth=settings["depth"],
        activation=settings["activation"],
        time_input=settings["time_input"],
        seed=settings["seed"],
        dtype=settings["dtype"],
    )
    initial_field = field
    optimizer = Adam(settings["learning_rate"])
    theta = field.flat_parameters()
    history = []
    started = time.perf_counter()
    for step in range(settings["train_steps"] + 1):
        field = field.with_flat_parameters(theta)
        gradients = _gradients(field, starts, targets, settings)
        history.append((step, gradients.loss, gradients.nfe_forward, gradients.nfe_backward))
        if not np.isfinite(gradients.loss):
            raise FloatingPointError(f"loss became {gradients.loss} at step {step}")
        if step < settings["train_steps"]:
            clipped, _ = clip_by_global_norm(gradients.grad_theta, settings["clip_norm"])
            theta = optimizer.update(theta, clipped)
    wall_time = time.perf_counter() - started
    final_states = gradients.ys[-1]

    steps, losses, nfe_forward, nfe_backward = (np.array(column) for column in zip(*history, strict=True))
    with open(out_dir / "history.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["step", "loss", "nfe_forward", "nfe_backward"])
        writer.writerows((step, repr(loss), forward, backward) for step, loss, forward, backward in history)
    metrics = {
        "initial_loss": float(losses[0]),
        "final_loss": float(losses[-1]),
        "max_final_distance": float(np.max(np.linalg.norm(final_states - targets, axis=-1))),
        "train_steps": settings["train_steps"],
        "nfe_forward_total": int(nfe_forward.sum()),
        "nfe_backward_total": int(nfe_backward.sum()),
        "wall_time_s": wall_time,
        "settings": settings,
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_scratch_loss(steps, losses, nfe_forward, nfe_backward, out_dir / "loss.png")
    plot_scratch_trajectory(
        _trajectories(initial_field, starts, settings["t1"]),
        _trajectories(field, starts, settings["t1"]),
        starts,
        targets,
        out_dir / "trajectory.png",
    )
    return metrics
