"""The experiments, one module each, all of one shape (docs/architecture.md).

Each module has a typed `Settings` (its defaults), `plan(section, seed=...)` turning its
config section into resolved runs, and the stages its workflow rules call: data, training
through the one loop (`pyode.train`), evaluation with figures, metrics in one shape.

The modules import JAX, Equinox, Optax, the models, the training loop and the plots inside the
functions that use them, not at the top: the workflow plans every experiment before any job (a
dry run too), and planning then imports none of them (tests/test_planning.py checks it).
"""

from . import classify as classify
from . import cnf as cnf
from . import dynamics as dynamics
from . import image as image
from . import latent as latent
from . import regression as regression
from . import sde as sde
from . import sonode as sonode
from . import summary as summary
from ._common import load_settings as load_settings
from ._common import read_history as read_history
from ._common import summarise_history as summarise_history
from ._common import train_run as train_run
from ._common import write_metrics as write_metrics
from ._sections import FieldSettings as FieldSettings
from ._sections import SolveSettings as SolveSettings
from ._sections import TrainSettings as TrainSettings
from ._settings import Section as Section
from ._settings import SettingsError as SettingsError
from ._settings import option as option
from ._settings import unique_names as unique_names

EXPERIMENTS = {
    "classify": classify,
    "dynamics": dynamics,
    "image": image,
    "regression": regression,
    "cnf": cnf,
    "sde": sde,
    "latent": latent,
    "sonode": sonode,
}
"""The experiments that train and evaluate, by the name of their config section."""
