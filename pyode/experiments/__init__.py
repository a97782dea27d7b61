"""The experiments, one module each, all of one shape (docs/architecture.md).

Each module has a typed `Settings` (its defaults), `plan(section, seed=...)` turning its
config section into resolved runs, the stages its workflow rules call (data, training
through the one loop, `pyode.train`, evaluation with figures, metrics in one shape) and, at
its end, its `DECLARATION`: the `pyode` commands it offers (`_registry.Experiment`). Every
module here not starting with `_` is an experiment and is found by itself: nothing lists them.

The modules import JAX, Equinox, Optax, the models, the training loop and the plots inside the
functions that use them, not at the top: the workflow plans every experiment before any job (a
dry run too), and planning then imports none of them (tests/test_planning.py checks it).
"""

import importlib
import pkgutil

from ._common import load_settings as load_settings
from ._common import read_history as read_history
from ._common import summarise_history as summarise_history
from ._common import train_run as train_run
from ._common import write_metrics as write_metrics
from ._registry import Command as Command
from ._registry import Experiment as Experiment
from ._registry import argument as argument
from ._sections import FieldSettings as FieldSettings
from ._sections import SolveSettings as SolveSettings
from ._sections import TrainSettings as TrainSettings
from ._settings import Section as Section
from ._settings import SettingsError as SettingsError
from ._settings import named_entries as named_entries
from ._settings import option as option


def _declared(name: str) -> Experiment:
    """The declaration at the end of experiment module `name` (imported here)."""
    declaration = getattr(importlib.import_module(f"{__name__}.{name}"), "DECLARATION", None)
    if not isinstance(declaration, Experiment) or declaration.name != name:
        raise TypeError(f"pyode/experiments/{name}.py must end with DECLARATION = Experiment({name!r}, ...)")
    return declaration


DECLARATIONS = {
    info.name: _declared(info.name)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name)
    if not info.name.startswith("_")
}
"""Every experiment module's declaration (its commands), by module name."""

EXPERIMENTS = {
    name: importlib.import_module(f"{__name__}.{name}")
    for name, declaration in DECLARATIONS.items()
    if declaration.trains
}
"""The experiments that train and evaluate (modules), by the name of their config section."""
