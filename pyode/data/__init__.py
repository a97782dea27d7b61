"""Data: synthetic generators and loaders."""

from ._synthetic import GENERATORS as GENERATORS
from ._synthetic import Split as Split
from ._synthetic import concentric_circles as concentric_circles
from ._synthetic import make_split as make_split
from ._synthetic import two_spirals as two_spirals
