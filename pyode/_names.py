"""The solver, gradient-method and Brownian-path names a run chooses from, and the check of a
solve's options: plain Python, so that planning runs (settings, `plan`) import no JAX or Diffrax.

`_solve` and `_sde` map these names to Diffrax objects (tests/test_planning.py checks that the
tables agree).
"""

SOLVER_NAMES = ("euler", "midpoint", "heun", "rk4", "bosh3", "tsit5", "dopri5", "dopri8", "kvaerno5")
"""The keys of `pyode.SOLVERS`, in its order."""

FIXED_STEP_SOLVERS = ("euler", "rk4")
"""Solvers with no error estimate: they take a fixed step, not tolerances."""

IMPLICIT_SOLVERS = ("kvaerno5",)
"""Solvers whose Newton iterations need tolerances, so that they take no fixed step."""

ADJOINTS = ("checkpoint", "backsolve", "backsolve-seminorm", "backsolve-rms")

BROWNIAN_PATHS = ("virtual_tree", "unsafe")


def _choose(name: str, kind: str, choices) -> None:
    if name not in choices:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {', '.join(choices)}")


def check_options(
    solver: str,
    adjoint: str = "checkpoint",
    *,
    rtol: float | None = None,
    atol: float | None = None,
    dt: float | None = None,
    steps: int | None = None,
) -> None:
    """Raise a clear ValueError if this combination of options cannot be solved."""
    _choose(solver, "solver", SOLVER_NAMES)
    _choose(adjoint, "gradient method", ADJOINTS)
    adaptive = rtol is not None or atol is not None
    fixed = dt is not None or steps is not None
    if adaptive and fixed:
        raise ValueError("give either tolerances (rtol, atol) or a fixed step (dt or steps), not both")
    if dt is not None and steps is not None:
        raise ValueError("give either dt or steps, not both")
    if adaptive and (rtol is None or atol is None):
        raise ValueError("an adaptive solve needs both rtol and atol")
    if adaptive and solver in FIXED_STEP_SOLVERS:
        adaptive_names = [name for name in SOLVER_NAMES if name not in FIXED_STEP_SOLVERS]
        raise ValueError(
            f"solver {solver!r} has no error estimate and takes no tolerances; give dt or steps, "
            f"or choose an adaptive solver: {', '.join(adaptive_names)}"
        )
    if solver in IMPLICIT_SOLVERS and fixed:
        raise ValueError(
            f"solver {solver!r} is implicit: give rtol and atol (its Newton iterations use them)"
        )
    if not adaptive and not fixed:
        raise ValueError(f"solver {solver!r} needs tolerances (rtol, atol) or a fixed step (dt or steps)")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if dt is not None and dt <= 0:
        raise ValueError(f"dt must be positive, got {dt}")
    if adjoint in ("backsolve-seminorm", "backsolve-rms") and not adaptive:
        raise ValueError(f"{adjoint} changes only the error norm of an adaptive backward solve")
