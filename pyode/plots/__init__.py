"""Every figure of the project: matplotlib only, no state.

Each figure module here (`_NAME.py`) lists its figures in `__all__`, and this package offers them
all by name (`plots.decision_regions`); the modules are found by themselves, so a new family's
figures are its own module and no line here.
"""

import importlib
import pkgutil

__all__ = []
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    globals().update({name: getattr(_module, name) for name in _module.__all__})
    __all__ += _module.__all__
__all__.sort()
del _info, _module
