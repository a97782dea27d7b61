"""Models: the MLP field's layout, NeuralODE/ANODE shapes, the classifier."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pyode.models import AugmentedNeuralODE, MLPField, make_classifier, mlp_field_from_weights


def test_mlp_field_layout_and_time_input():
    field = MLPField(3, width=5, depth=2, activation="softplus", time_input=True, key=jax.random.PRNGKey(0))
    assert field.sizes == [4, 5, 5, 3]
    assert [w.shape for w, _ in field.weights()] == [(5, 4), (5, 5), (3, 5)]
    y = jnp.ones((7, 3))
    assert field(0.5, y).shape == (7, 3)
    assert not jnp.allclose(field(0.0, y), field(1.0, y))  # t is a real input


def test_mlp_field_matches_a_hand_computation():
    field = MLPField(2, width=3, activation="tanh", time_input=True, key=jax.random.PRNGKey(1))
    (w1, b1), (w2, b2) = [(np.asarray(w), np.asarray(b)) for w, b in field.weights()]
    y, t = np.array([0.3, -0.2]), 0.7
    expected = w2 @ np.tanh(w1 @ np.append(y, t) + b1) + b2
    np.testing.assert_allclose(field(t, jnp.asarray(y)), expected, rtol=1e-6)


def test_weights_round_trip_and_shape_errors():
    field = MLPField(2, width=4, key=jax.random.PRNGKey(2))
    copy = mlp_field_from_weights(field.weights(), activation="tanh", time_input=False)
    np.testing.assert_array_equal(copy(0.0, jnp.ones(2)), field(0.0, jnp.ones(2)))
    with pytest.raises(ValueError, match="shape mismatch"):
        field.with_weights([(jnp.zeros((3, 2)), jnp.zeros(3)), (jnp.zeros((2, 3)), jnp.zeros(2))])


def test_unknown_activation_lists_choices():
    with pytest.raises(ValueError, match="choose one of"):
        MLPField(2, activation="swish", key=jax.random.PRNGKey(0))


def test_classifier_shapes_and_augmentation():
    options = {"solver": "rk4", "steps": 3}
    model = make_classifier(2, augment=2, width=8, solve_options=options, key=jax.random.PRNGKey(0))
    assert isinstance(model.ode, AugmentedNeuralODE)
    x = jnp.ones((5, 2))
    np.testing.assert_array_equal(model.ode.lift(x)[:, 2:], 0.0)
    logits, solution = model(x)
    assert logits.shape == (5,)
    assert solution.final.shape == (5, 4)
    assert int(solution.nfe_forward) == 4 * 3
