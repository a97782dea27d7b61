"""pyode: a reproducible laboratory for neural ordinary differential equations."""

from ._counting import counting as counting
from ._solve import ADJOINTS as ADJOINTS
from ._solve import RK4 as RK4
from ._solve import SOLVERS as SOLVERS
from ._solve import Solution as Solution
from ._solve import check_options as check_options
from ._solve import solve as solve

__version__ = "0.1.0"
