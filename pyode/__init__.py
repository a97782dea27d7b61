"""pyode: a reproducible laboratory for neural ordinary differential equations.

The public names below are loaded on first use, so that `import pyode.scratch` (pure
NumPy) does not pull in JAX.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "counting": "._counting",
    "ADJOINTS": "._solve",
    "RK4": "._solve",
    "SOLVERS": "._solve",
    "Solution": "._solve",
    "check_options": "._solve",
    "solve": "._solve",
    "load_classifier": "._classify",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'pyode' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
