"""pyode: a reproducible laboratory for neural ordinary differential equations.

The public names below are loaded on first use, so that `import pyode.scratch` (pure
NumPy) does not pull in JAX.
"""

from ._lazy import lazy_public_names

__version__ = "0.1.0"

_PUBLIC = {
    "counting": "._counting",
    "counted_programs": "._counting",
    "ADJOINTS": "._names",
    "RK4": "._solve",
    "SOLVER_NAMES": "._names",
    "FIXED_STEP_SOLVERS": "._names",
    "IMPLICIT_SOLVERS": "._names",
    "SOLVERS": "._solve",
    "STATUS_MESSAGES": "._solve",
    "Solution": "._solve",
    "check_options": "._names",
    "largest_part_norm": "._solve",
    "solve": "._solve",
    "status_message": "._solve",
    "BROWNIAN_PATHS": "._names",
    "GridBrownianPath": "._sde",
    "SDE_ADJOINTS": "._sde",
    "SDE_SOLVERS": "._sde",
    "brownian_path": "._sde",
    "check_sde_options": "._sde",
    "solve_sde": "._sde",
    "MissingFile": "._errors",
    "UserError": "._errors",
    "CorruptFile": "._files",
    "atomic_write": "._files",
    "file_digest": "._files",
    "load_arrays": "._files",
    "read_json": "._files",
    "save_arrays": "._files",
    "verify_seal": "._files",
    "write_json": "._files",
    "use_compilation_cache": "._runtime",
    "code_digest": "._provenance",
    "code_label": "._provenance",
    "code_version": "._provenance",
    "experiment_modules": "._provenance",
    "jax_device": "._provenance",
    "versions": "._provenance",
}

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy_public_names(globals(), _PUBLIC)
