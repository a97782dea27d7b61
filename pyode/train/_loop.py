"""The one training loop: resume, interrupts, divergence, checkpoints, history and progress.

What a step computes is the stepper's business (`OptaxStepper` for JAX models; the NumPy
regression brings its own); everything a run needs to be trusted is done here, once:

- the state is resumed only by a run of the same identity (settings and input digests);
- SIGINT and SIGTERM set a flag that is read between steps: the run stops after the step in
  progress, saves that state and raises `TrainingInterrupted` (the command exits 130 / 143);
- a failed step (non-finite loss, gradient or parameter, or a failed solve) or a loss that
  grows past `divergence_factor` times its best (smoothed) value raises `TrainingDiverged`
  naming the step, and the state kept is the last good one;
- the history gets a record per step; backward evaluation counts come from the counted
  step, run every `count_every` steps beside the bare one.
"""

import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from ._options import TrainOptions
from ._state import TrainState, load_state, save_state

SMOOTHING = 0.9
"""Weight of the past in the smoothed loss that the divergence check compares with its best."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped the run; its state at `step` is saved in `state_dir`."""

    def __init__(self, signum: int, step: int, steps: int, state_dir: Path):
        self.signum, self.step = signum, step
        name = signal.Signals(signum).name
        super().__init__(
            f"interrupted by {name} after step {step} of {steps}; the state is saved in {state_dir} "
            "and the same command resumes from it"
        )


class TrainingDiverged(RuntimeError):
    """Training became non-finite, blew up, or its solver failed; the last good state is kept."""


class StepResult(Protocol):
    params: Any
    opt_state: Any
    loss: float
    metrics: dict[str, float]
    failure: str | None


class Stepper(Protocol):
    """One optimisation step, and the pieces the loop needs around it."""

    def init(self) -> tuple[Any, Any]:
        """Initial (parameters, optimiser state)."""

    def step(self, params, opt_state, batch) -> StepResult:
        """One update; `failure` says what went wrong (None when the step is good)."""

    def count(self, params, opt_state, batch) -> int | None:
        """Backward evaluations of the same step as executed (None if not counted)."""

    def model(self, params) -> Any:
        """The model holding `params`."""


def fit(
    stepper: Stepper,
    batch_at: Callable[[int], Any],
    options: TrainOptions,
    state_dir: str | Path,
    *,
    identity: str,
    observe: Callable[[int, Any], dict | None] | None = None,
    hint: str = "",
) -> TrainState:
    """Train to `options.steps` steps (resuming a saved state of this `identity`) and return the state.

    `batch_at(step)` must depend on the step alone. `observe(steps_done, model)` may return a
    JSON-able record to keep with the state (called at 0 and after every step). `hint` names
    the settings to change when training diverges.
    """
    with _SignalFlag() as signals:
        return _train(stepper, batch_at, options, Path(state_dir), identity, observe, hint, signals)


def _train(stepper, batch_at, options, state_dir: Path, identity, observe, hint, signals) -> TrainState:
    state_dir.mkdir(parents=True, exist_ok=True)
    params, opt_state = stepper.init()
    state = load_state(state_dir, TrainState(0, params, opt_state), identity)
    if state is None:
        state = TrainState(0, params, opt_state)
        _observe(observe, state, stepper)
    watch = _DivergenceWatch(options.divergence_factor, state.history)
    previous = None
    """(step, parameters, optimiser state, observations) before the step in progress: the last state
    whose step succeeded (finite loss, gradient and parameters, a good solve), kept if this one fails."""

    def stop(cause: str):
        message = f"training diverged at step {state.step}: {cause}. {hint or _default_hint(options)}"
        if previous is None:
            kept = "nothing saved was changed" if state.step else "no step succeeded, so no state is kept"
            raise TrainingDiverged(f"{message} ({kept})")
        step, params, opt_state, observed = previous
        history = state.history[:step]
        save_state(
            state_dir, TrainState(step, params, opt_state, history, state.observations[:observed]), identity
        )
        raise TrainingDiverged(
            f"{message} (kept the state before step {step}, the last that succeeded, whose loss was "
            f"{state.history[step]['loss']:.6g}, in {state_dir})"
        )

    with tqdm(
        total=options.steps,
        initial=state.step,
        desc=options.description,
        disable=not options.progress,
        mininterval=2.0,
    ) as bar:
        while state.step < options.steps and not signals.received:
            batch = batch_at(state.step)
            tic = time.perf_counter()
            result = stepper.step(state.params, state.opt_state, batch)
            record = {"step": state.step, "loss": result.loss, **result.metrics}
            record["seconds"] = time.perf_counter() - tic
            if result.failure:
                stop(result.failure)
            if state.step % options.count_every == 0:
                tic = time.perf_counter()
                counted = stepper.count(state.params, state.opt_state, batch)
                if counted is not None:
                    record.update(nfe_backward=counted, count_seconds=time.perf_counter() - tic)
            blowup = watch.update(result.loss)
            if blowup:
                stop(blowup)
            previous = (state.step, state.params, state.opt_state, len(state.observations))
            state.params, state.opt_state = result.params, result.opt_state
            state.history.append(record)
            state.step += 1
            _observe(observe, state, stepper)
            bar.update(1)
            if state.step % 20 == 0 or state.step == options.steps:
                bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "step"}, refresh=False)
            if state.step % options.checkpoint_every == 0:
                save_state(state_dir, state, identity)
        save_state(state_dir, state, identity)
        if signals.received:
            raise TrainingInterrupted(signals.received, state.step, options.steps, state_dir)
    return state


def _observe(observe, state: TrainState, stepper: Stepper) -> None:
    if observe is not None:
        record = observe(state.step, stepper.model(state.params))
        if record is not None:
            state.observations.append(record)


def _default_hint(options: TrainOptions) -> str:
    clip = options.gradient_clip
    clipping = "set train.gradient_clip" if clip is None else f"lower train.gradient_clip (now {clip:g})"
    return f"Lower train.learning_rate (now {options.learning_rate:g}) or {clipping}"


class _DivergenceWatch:
    """Flags a smoothed loss that climbs past `factor` times its best value.

    The scale of "best" has a floor of 1e-3 times the first loss, so that a loss near zero
    (or negative, as a log-likelihood may be) is not flagged for small absolute wobbles.
    """

    def __init__(self, factor: float, history: list[dict]):
        self.factor = factor
        self.smoothed = self.best = self.floor = None
        for record in history:
            self.update(record["loss"])

    def update(self, loss: float) -> str | None:
        if self.smoothed is None:
            self.smoothed = self.best = loss
            self.floor = 1e-3 * abs(loss)
            return None
        self.smoothed = SMOOTHING * self.smoothed + (1 - SMOOTHING) * loss
        self.best = min(self.best, self.smoothed)
        scale = max(abs(self.best), self.floor, math.ulp(1.0))
        if self.smoothed > self.best + (self.factor - 1) * scale:
            return (
                f"the smoothed loss grew to {self.smoothed:.4g}, more than train.divergence_factor "
                f"({self.factor:g}) times its best, {self.best:.4g}"
            )
        return None


class _SignalFlag:
    """While active, SIGINT and SIGTERM only set `received` (the signal number), read between steps."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.received = 0
        self._previous = {s: signal.getsignal(s) for s in self.SIGNALS}
        for s in self.SIGNALS:
            signal.signal(s, self._set)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False

    def _set(self, signum, frame):
        self.received = self.received or signum
