"""Optax training loops with periodic checkpoints, resumption and a streamed history."""

import json
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ._checkpoint import load_tree, save_tree
from ._counting import counting


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainOptions:
    """How long to train and how often to save."""

    steps: int
    learning_rate: float
    checkpoint_every: int = 100
    schedule: str = "constant"
    gradient_clip: float | None = None
    progress: bool = True
    description: str = "train"

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"unknown schedule {self.schedule!r}; choose constant or cosine")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, got {self.checkpoint_every}")


def adam(options: TrainOptions) -> optax.GradientTransformation:
    """Adam at the configured learning rate (constant, or cosine-decayed to zero over the run),
    after optional global-norm clipping."""
    rate = options.learning_rate
    if options.schedule == "cosine":
        rate = optax.cosine_decay_schedule(options.learning_rate, options.steps)
    parts = [optax.clip_by_global_norm(options.gradient_clip)] if options.gradient_clip else []
    return optax.chain(*parts, optax.adam(rate))


def fit(
    model: eqx.Module,
    loss_fn: Callable[[eqx.Module, Any], tuple[jax.Array, dict]],
    batch_at: Callable[[int], Any],
    options: TrainOptions,
    state_dir: str | Path,
    *,
    optimizer: optax.GradientTransformation | None = None,
    on_step: Callable[[int, eqx.Module], None] | None = None,
) -> eqx.Module:
    """Train `model` for `options.steps` steps and return it.

    `loss_fn(model, batch)` returns the loss and a dict of scalar metrics (it may include
    `nfe_forward`); `batch_at(step)` must depend on the step alone, so that a resumed run
    sees the same batches as an uninterrupted one. The state directory holds
    `checkpoint.eqx` (model, optimiser state and step, written every `checkpoint_every`
    steps, at the end and on SIGTERM or Ctrl-C) and `history.jsonl` (one line per step:
    loss, metrics, forward/backward evaluation counts, seconds). If the directory holds a
    checkpoint, training resumes from it. `on_step(steps_done, model)`, if given, is called
    after every step with the model as it stands after that step.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = state_dir / "checkpoint.eqx"
    history_path = state_dir / "history.jsonl"
    optimizer = optimizer or adam(options)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimizer.init(params)
    start = 0
    if checkpoint_path.exists():
        params, opt_state, start = load_tree(checkpoint_path, (params, opt_state, 0))
        start = int(start)
    _truncate_history(history_path, start)

    @eqx.filter_jit
    def train_step(params, opt_state, batch):
        def loss_of(p):
            return loss_fn(eqx.combine(p, static), batch)

        (loss, metrics), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_opt_state, loss, metrics

    def save(step):
        save_tree(checkpoint_path, (params, opt_state, jnp.asarray(step)))

    step = start
    with (
        _terminate_as_interrupt(),
        open(history_path, "a") as history,
        tqdm(
            total=options.steps,
            initial=start,
            desc=options.description,
            disable=not options.progress,
            mininterval=2.0,
        ) as bar,
    ):
        try:
            while step < options.steps:
                batch = batch_at(step)
                tic = time.perf_counter()
                with counting() as counts:
                    new_params, new_opt_state, loss, metrics = train_step(params, opt_state, batch)
                    loss = float(loss)
                seconds = time.perf_counter() - tic
                if not np.isfinite(loss):
                    save(step)
                    raise NonFiniteLossError(
                        f"loss became {loss} at step {step}; training stopped and the last good "
                        f"parameters (before step {step}) are kept in {checkpoint_path}"
                    )
                params, opt_state = new_params, new_opt_state
                record = {"step": step, "loss": loss}
                record.update({name: float(value) for name, value in metrics.items()})
                record.update(nfe_backward=counts.backward, seconds=seconds)
                history.write(json.dumps(record) + "\n")
                step += 1
                bar.update(1)
                if step % 20 == 0 or step == options.steps:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k not in ("step",)})
                if on_step is not None:
                    on_step(step, eqx.combine(params, static))
                if step % options.checkpoint_every == 0:
                    history.flush()
                    save(step)
        except KeyboardInterrupt:
            history.flush()
            save(step)
            raise
        history.flush()
        save(step)
    return eqx.combine(params, static)


def start_state_dir(state_dir: str | Path, settings: dict) -> Path:
    """Create the training-state folder of a run with these settings and return it.

    A folder left by a run with other settings (the config changed since) is emptied, so
    that a checkpoint is only ever resumed by the run that wrote it.
    """
    state_dir = Path(state_dir)
    recorded = state_dir / "settings.json"
    text = json.dumps(settings, sort_keys=True, indent=2)
    if state_dir.exists() and (not recorded.exists() or recorded.read_text() != text):
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    recorded.write_text(text)
    return state_dir


def read_history(path: str | Path) -> list[dict]:
    """The records of a `history.jsonl` file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _truncate_history(path: Path, start: int) -> None:
    """Keep only history lines of steps before `start` (the checkpoint's step)."""
    if not path.exists():
        return
    kept = [
        line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] < start
    ]
    path.write_text("".join(line + "\n" for line in kept))


class _terminate_as_interrupt:
    """Turn SIGTERM (what Snakemake sends on Ctrl-C) into KeyboardInterrupt for a clean save."""

    def __enter__(self):
        self._previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._raise)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self._previous)
        return False

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
