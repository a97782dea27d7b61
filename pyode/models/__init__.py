"""Equinox modules: vector fields, neural ODEs and classifiers, and their files."""

from ._field import ACTIVATIONS as ACTIVATIONS
from ._field import LinearField as LinearField
from ._field import MLPField as MLPField
from ._field import activation_function as activation_function
from ._field import mlp_field_from_weights as mlp_field_from_weights
from ._image import IMAGE_MODEL_KINDS as IMAGE_MODEL_KINDS
from ._image import ImageClassifier as ImageClassifier
from ._image import make_image_classifier as make_image_classifier
from ._image import parameter_count as parameter_count
from ._node import AugmentedNeuralODE as AugmentedNeuralODE
from ._node import NeuralODE as NeuralODE
from ._node import ODEClassifier as ODEClassifier
from ._node import classifier_loss as classifier_loss
from ._node import make_classifier as make_classifier
from ._physics import VanDerPol as VanDerPol
from ._saved import MODEL_KINDS as MODEL_KINDS
from ._saved import build_model as build_model
from ._saved import load_model as load_model
from ._saved import save_model as save_model
