"""Equinox modules: vector fields, neural ODEs and classifiers."""

from ._field import ACTIVATIONS as ACTIVATIONS
from ._field import MLPField as MLPField
from ._field import activation_function as activation_function
from ._field import mlp_field_from_weights as mlp_field_from_weights
from ._image import ImageClassifier as ImageClassifier
from ._image import make_image_classifier as make_image_classifier
from ._image import parameter_count as parameter_count
from ._node import AugmentedNeuralODE as AugmentedNeuralODE
from ._node import NeuralODE as NeuralODE
from ._node import ODEClassifier as ODEClassifier
from ._node import make_classifier as make_classifier
from ._physics import VanDerPol as VanDerPol
