"""The one training loop every experiment uses (see `fit`), its options and its saved state."""

from ._loop import Stepper as Stepper
from ._loop import TrainingDiverged as TrainingDiverged
from ._loop import TrainingInterrupted as TrainingInterrupted
from ._loop import fit as fit
from ._options import OPTIMIZERS as OPTIMIZERS
from ._options import SCHEDULES as SCHEDULES
from ._options import TrainOptions as TrainOptions
from ._options import make_optimizer as make_optimizer
from ._state import TrainState as TrainState
from ._state import clear_state as clear_state
from ._state import load_state as load_state
from ._state import run_identity as run_identity
from ._state import save_state as save_state
from ._steppers import OptaxStepper as OptaxStepper
from ._steppers import StepResult as StepResult
