"""Independent implementations of a cross-validation case, all behind one small interface.

Each backend (`AbstractBackend`) solves a `Case` and returns a `Result`: the trajectory,
dL/dy0, dL/dtheta, evaluation counts, wall time, versions and a method description.
Run one in its own process: `python -m pyode.reference BACKEND case.npz result.npz`.
`pyode_field`, `torch_field` and `scratch_field` build a case's field in each library, and
`torchode_solver` solves one with torchode.

The benchmarks (`pyode.bench`) find each library by name (`get_library`): an `AbstractLibrary`
builds its `TrainingStep` on a `Problem` and its work-precision solves of a `Case`, in the same
module as its field adapter and backend, so that a library's code lives in one place.
"""

from ._base import AbstractBackend as AbstractBackend
from ._base import BackendUnavailable as BackendUnavailable
from ._base import Result as Result
from ._base import Skipped as Skipped
from ._base import load_result as load_result
from ._case import Case as Case
from ._case import load_case as load_case
from ._julia import find_julia as find_julia
from ._julia import julia_unavailable_reason as julia_unavailable_reason
from ._julia import juliapkg_project as juliapkg_project
from ._library import AbstractLibrary as AbstractLibrary
from ._library import MethodUnavailable as MethodUnavailable
from ._library import TrainingStep as TrainingStep
from ._library import one_line as one_line
from ._problem import Problem as Problem
from ._pyode import pyode_field as pyode_field
from ._registry import BACKENDS as BACKENDS
from ._registry import LIBRARIES as LIBRARIES
from ._registry import get_backend as get_backend
from ._registry import get_library as get_library
from ._registry import run_backend as run_backend
from ._scipy import save_time_solution as save_time_solution
from ._scipy import vdp_cycle as vdp_cycle
from ._scratch import scratch_field as scratch_field
from ._torch import torch_field as torch_field
from ._torchode import torchode_solver as torchode_solver
