"""Data: synthetic generators and loaders."""

from ._dynamics import DYNAMICS_GENERATORS as DYNAMICS_GENERATORS
from ._dynamics import Trajectories as Trajectories
from ._dynamics import Windows as Windows
from ._dynamics import check_trajectory_options as check_trajectory_options
from ._dynamics import make_trajectories as make_trajectories
from ._dynamics import sample_windows as sample_windows
from ._dynamics import true_field as true_field
from ._images import MNIST_FILES as MNIST_FILES
from ._images import MNIST_MIRRORS as MNIST_MIRRORS
from ._images import ImageSplit as ImageSplit
from ._images import MNISTUnavailable as MNISTUnavailable
from ._images import find_mnist_file as find_mnist_file
from ._images import load_digits_split as load_digits_split
from ._images import load_mnist as load_mnist
from ._images import normalise as normalise
from ._images import prepare_mnist as prepare_mnist
from ._images import random_crop as random_crop
from ._images import read_idx as read_idx
from ._synthetic import GENERATORS as GENERATORS
from ._synthetic import Split as Split
from ._synthetic import concentric_circles as concentric_circles
from ._synthetic import make_split as make_split
from ._synthetic import split_sizes as split_sizes
from ._synthetic import two_spirals as two_spirals
