"""The one training loop every experiment uses (see `fit`), its options and its saved state.

The public names below are loaded on first use, so that the settings' names and `TrainOptions`
import no JAX.
"""

from .. import lazy_public_names

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

__getattr__, __dir__ = lazy_public_names(globals(), _PUBLIC)
