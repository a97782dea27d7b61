"""Cross-validation: cases, running backends, comparing them, tolerance sweeps (docs/crossval.md)."""

from ._cases import EXPLICIT_SOLVERS as EXPLICIT_SOLVERS
from ._cases import IMPLICIT_SOLVERS as IMPLICIT_SOLVERS
from ._cases import case_from_classifier as case_from_classifier
from ._cases import case_from_cnf as case_from_cnf
from ._cases import case_from_model as case_from_model
from ._cases import make_case as make_case
from ._cases import write_case as write_case
from ._cli import main as main
from ._compare import PairError as PairError
from ._compare import allowed_error as allowed_error
from ._compare import compare_results as compare_results
from ._compare import disagreeing_backends as disagreeing_backends
from ._compare import worst_errors as worst_errors
from ._compare import write_summary as write_summary
