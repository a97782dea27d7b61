"""Equinox modules: vector fields, neural ODEs, classifiers, latent and second-order ODEs, flows,
SDEs, and their files.

The public names below are loaded on first use, so that the names the settings choose from
(`ACTIVATION_NAMES`, `TRACES`, ...) import no JAX.
"""

from .. import lazy_public_names

_PUBLIC = {
    "ACTIVATION_NAMES": "._names",
    "TRACES": "._names",
    "PROBES": "._names",
    "IMAGE_MODEL_KINDS": "._names",
    "POSITION_MODELS": "._names",
    "CNF": "._cnf",
    "CNFDynamics": "._cnf",
    "cnf_loss": "._cnf",
    "make_cnf": "._cnf",
    "standard_normal_log_density": "._cnf",
    "ACTIVATIONS": "._field",
    "LinearField": "._field",
    "MLPField": "._field",
    "activation_function": "._field",
    "mlp_field_from_weights": "._field",
    "ImageClassifier": "._image",
    "make_image_classifier": "._image",
    "parameter_count": "._image",
    "LatentODE": "._latent",
    "RecognitionRNN": "._latent",
    "RecurrentForecaster": "._latent",
    "gaussian_log_density": "._latent",
    "latent_ode_loss": "._latent",
    "make_latent_ode": "._latent",
    "recurrent_loss": "._latent",
    "AugmentedNeuralODE": "._node",
    "NeuralODE": "._node",
    "ODEClassifier": "._node",
    "classifier_loss": "._node",
    "make_classifier": "._node",
    "VanDerPol": "._physics",
    "MODEL_KINDS": "._saved",
    "build_model": "._saved",
    "load_model": "._saved",
    "save_model": "._saved",
    "NeuralSDE": "._sde",
    "make_neural_sde": "._sde",
    "transition_nll": "._sde",
    "PositionODE": "._second_order",
    "SecondOrderField": "._second_order",
    "make_position_ode": "._second_order",
    "second_order_field_from_weights": "._second_order",
}

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy_public_names(globals(), _PUBLIC)
