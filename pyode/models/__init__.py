"""Equinox modules: vector fields, neural ODEs and classifiers."""

from ._field import ACTIVATIONS as ACTIVATIONS
from ._field import MLPField as MLPField
from ._field import activation_function as activation_function
from ._field import mlp_field_from_weights as mlp_field_from_weights
from ._node import AugmentedNeuralODE as AugmentedNeuralODE
from ._node import NeuralODE as NeuralODE
from ._node import ODEClassifier as ODEClassifier
from ._node import make_classifier as make_classifier
from ._physics import VanDerPol as VanDerPol
