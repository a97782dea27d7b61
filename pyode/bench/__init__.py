"""Benchmarks: pyode against torchdiffeq, torchode, SciPy and the scratch solvers on identical problems
(docs/bench.md): training steps, compile time, scaling, and work-precision diagrams.

This package orchestrates, measures and reports; each library's code (its training step and its
work-precision solves) lives with it in `pyode.reference`, found by name (`get_library`).
`Problem`, `TrainingStep` and `MethodUnavailable` are `pyode.reference`'s, named here too.
"""

from ..reference import MethodUnavailable as MethodUnavailable
from ..reference import Problem as Problem
from ..reference import TrainingStep as TrainingStep
from ._cli import main as main
from ._libraries import METHODS as METHODS
from ._libraries import applicable_methods as applicable_methods
from ._libraries import prepare as prepare
from ._measure import compile_times as compile_times
from ._measure import length_scaling as length_scaling
from ._measure import network_seconds as network_seconds
from ._measure import sde_batch_scaling as sde_batch_scaling
from ._measure import size_scaling as size_scaling
from ._measure import training_steps as training_steps
from ._precision import PRECISION_PROBLEMS as PRECISION_PROBLEMS
from ._precision import PRECISION_SOLVERS as PRECISION_SOLVERS
from ._precision import PrecisionProblem as PrecisionProblem
from ._precision import check_precision_solvers as check_precision_solvers
from ._precision import check_precision_tolerances as check_precision_tolerances
from ._precision import library_solvers as library_solvers
from ._precision import precision_problem as precision_problem
from ._precision import work_precision as work_precision
from ._problems import make_problem as make_problem
from ._problems import sequence_problem as sequence_problem
from ._problems import spiral_problem as spiral_problem
from ._timing import Timing as Timing
from ._timing import machine_info as machine_info
from ._timing import measure as measure
