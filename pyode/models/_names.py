"""The names a model's settings choose from: plain Python, so that planning runs import no JAX.

The modules that build the models map them to JAX (tests/test_planning.py checks that the tables agree).
"""

ACTIVATION_NAMES = ("tanh", "softplus", "elu", "silu", "relu")
"""The keys of `ACTIVATIONS`, in its order."""

TRACES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")

IMAGE_MODEL_KINDS = ("odenet", "resnet", "noode")

POSITION_MODELS = ("node", "anode", "sonode")
"""What `PositionODE` can be: a plain NODE on x, an augmented one, or a second-order one."""
