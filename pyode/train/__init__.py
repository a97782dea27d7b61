"""The one training loop every experiment uses (see `fit`), its options and its saved state.

The public names below are loaded on first use, so that the settings' names and `TrainOptions`
import no JAX.
"""

import importlib

_PUBLIC = {
    "Stepper": "._loop",
    "TrainingDiverged": "._loop",
    "TrainingInterrupted": "._loop",
    "fit": "._loop",
    "OPTIMIZERS": "._options",
    "SCHEDULES": "._options",
    "TrainOptions": "._options",
    "make_optimizer": "._options",
    "TrainState": "._state",
    "clear_state": "._state",
    "load_state": "._state",
    "run_identity": "._state",
    "save_state": "._state",
    "OptaxStepper": "._steppers",
    "StepResult": "._steppers",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'pyode.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
