"""Models: the MLP and linear fields, NeuralODE/ANODE shapes, the classifier, saved model files."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pyode
from pyode.models import (
    MODEL_KINDS,
    AugmentedNeuralODE,
    LinearField,
    MLPField,
    build_model,
    load_model,
    make_classifier,
    make_cnf,
    make_image_classifier,
    make_latent_ode,
    make_position_ode,
    mlp_field_from_weights,
    save_model,
)


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


def test_linear_field():
    field = LinearField(3, key=jax.random.PRNGKey(0))
    assert field.matrix.shape == (3, 3)
    y = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
    np.testing.assert_allclose(field(0.0, y), y @ field.matrix.T)
    np.testing.assert_array_equal(field(0.0, y), field(5.0, y))  # autonomous


SAVED_MODELS = {
    "mlp_field": {"dim": 2, "width": 5, "depth": 2, "activation": "elu", "time_input": True},
    "linear_field": {"dim": 2},
    "classifier": {"data_dim": 2, "augment": 1, "width": 4, "solve_options": {"solver": "rk4", "steps": 2}},
    "image_classifier": {  # an ANODE block on colour images
        "kind": "odenet",
        "channels": 3,
        "width": 4,
        "augment": 2,
        "downsampling_layers": 1,
        "solve_options": {"solver": "euler", "steps": 1, "throw": False},
    },
    "latent_ode": {
        "latent": 3,
        "encoder_hidden": 5,
        "field_width": 4,
        "solve_options": {"solver": "rk4", "steps": 2},
    },
    "recurrent_forecaster": {"obs_dim": 2, "hidden": 5},
    "position_ode": {"kind": "sonode", "dim": 1, "width": 4, "solve_options": {"solver": "rk4", "steps": 2}},
    "cnf": {"dim": 2, "width": 4, "depth": 1, "solve_options": {"solver": "rk4", "steps": 2}},
    "neural_sde": {"dim": 1, "drift_width": 4, "drift_depth": 1, "diffusion_width": 3, "diffusion_depth": 1},
}


def _output(model, kind):
    """What the model computes from a fixed input."""
    times, values, mask = jnp.linspace(0.0, 1.0, 4), jnp.ones((4, 2), jnp.float32), jnp.ones(4)
    if kind == "image_classifier":
        return model(jnp.ones((2, 8, 8, 3), jnp.float32))
    if kind == "classifier":
        return model(jnp.ones((3, 2)))
    if kind == "latent_ode":
        return model.encode(times, values, mask)
    if kind == "recurrent_forecaster":
        return model.forecast(times, values, mask, jnp.array([1.5, 2.0]))
    if kind == "position_ode":
        return model.positions(jnp.ones((3, 1), jnp.float32), times)
    if kind == "cnf":
        return model.log_density(jnp.ones((3, 2), jnp.float32))
    if kind == "neural_sde":
        return model.diffusion(0.0, jnp.ones((3, 1), jnp.float32))
    return model(0.3, jnp.ones((3, 2)))


def test_every_saveable_kind_is_tested():
    assert set(SAVED_MODELS) == set(MODEL_KINDS)


@pytest.mark.parametrize("kind", list(SAVED_MODELS))
def test_saved_model_round_trip(tmp_path, kind):
    model = build_model(kind, SAVED_MODELS[kind], key=jax.random.PRNGKey(3))
    save_model(tmp_path / "model.npz", model, kind=kind, spec=SAVED_MODELS[kind], metadata={"note": [1, 2]})
    loaded, metadata = load_model(tmp_path / "model.npz")
    assert metadata["kind"] == kind and metadata["spec"] == SAVED_MODELS[kind] and metadata["note"] == [1, 2]
    assert type(loaded) is type(model)
    original = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))
    restored = jax.tree_util.tree_leaves(eqx.filter(loaded, eqx.is_array))
    assert len(original) == len(restored)
    for a, b in zip(original, restored):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    # Not the skeleton's fresh parameters (load_model builds it with another key) but the saved ones.
    fresh = build_model(kind, SAVED_MODELS[kind], key=jax.random.PRNGKey(0))
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(original, jax.tree_util.tree_leaves(eqx.filter(fresh, eqx.is_array)))
    )
    out, again = _output(model, kind), _output(loaded, kind)
    np.testing.assert_array_equal(jax.tree_util.tree_leaves(out)[0], jax.tree_util.tree_leaves(again)[0])


def test_fields_are_built_in_float32():
    for kind in ("mlp_field", "linear_field"):
        model = build_model(kind, SAVED_MODELS[kind], key=jax.random.PRNGKey(0))
        assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))} == {
            jnp.dtype(jnp.float32)
        }


def test_unknown_model_kind_lists_choices():
    with pytest.raises(ValueError, match="unknown model kind 'transformer'; choose one of"):
        build_model("transformer", {}, key=jax.random.PRNGKey(0))


def test_bad_model_files_are_refused(tmp_path):
    field = build_model("mlp_field", {"dim": 2, "width": 5}, key=jax.random.PRNGKey(0))
    path = tmp_path / "model.npz"
    save_model(path, field, kind="mlp_field", spec={"dim": 2, "width": 5})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(pyode.CorruptFile, match="model.npz"):
        load_model(path)
    save_model(tmp_path / "other.npz", field, kind="mlp_field", spec={"dim": 2, "width": 6})
    with pytest.raises(
        pyode.CorruptFile, match=r"other.npz: array 0 has shape \(5, 2\), the model expects \(6, 2\)"
    ):
        load_model(tmp_path / "other.npz")
    save_model(tmp_path / "deeper.npz", field, kind="mlp_field", spec={"dim": 2, "width": 5, "depth": 2})
    with pytest.raises(pyode.CorruptFile, match="deeper.npz holds 4 arrays"):
        load_model(tmp_path / "deeper.npz")
    pyode.save_arrays(tmp_path / "data.npz", {"a": np.zeros(2)}, {"kind": "split"})
    with pytest.raises(pyode.CorruptFile, match="data.npz does not hold a pyode model"):
        load_model(tmp_path / "data.npz")


SAVE_TIMES = np.linspace(0.0, 1.0, 3)
"""Concrete save times closed over by the traced calls below."""

FIXED_STEP = {"solver": "rk4", "dt": 0.25}
"""A fixed step given as dt, whose step count the solve works out from concrete times."""

SOLVING_METHODS = {
    "classifier": (
        lambda key: make_classifier(2, width=4, solve_options=FIXED_STEP, key=key),
        lambda model, x: model(x)[0],
        (3, 2),
    ),
    "neural_ode_path": (
        lambda key: make_classifier(2, augment=1, width=4, solve_options=FIXED_STEP, key=key),
        lambda model, x: model.ode.solve(x, SAVE_TIMES).ys,
        (3, 2),
    ),
    "position_ode": (
        lambda key: make_position_ode("sonode", width=4, solve_options=FIXED_STEP, key=key),
        lambda model, x: model.positions(x, SAVE_TIMES)[0],
        (3, 1),
    ),
    "latent_path": (
        lambda key: make_latent_ode(
            latent=2, encoder_hidden=3, field_width=4, solve_options=FIXED_STEP, key=key
        ),
        lambda model, z: model.latent_path(z, SAVE_TIMES).ys,
        (3, 2),
    ),
    "cnf_log_density": (
        lambda key: make_cnf(2, width=4, depth=1, solve_options=FIXED_STEP, key=key),
        lambda model, x: model.log_density(x)[0],
        (3, 2),
    ),
    "cnf_flow": (
        lambda key: make_cnf(2, width=4, depth=1, solve_options=FIXED_STEP, key=key),
        lambda model, z: model.flow(z, SAVE_TIMES[::-1]).ys,
        (3, 2),
    ),
    "cnf_sample": (
        lambda key: make_cnf(2, width=4, depth=1, solve_options=FIXED_STEP, key=key),
        lambda model, z: model.sample(z)[0],
        (3, 2),
    ),
    "odenet": (
        lambda key: make_image_classifier(
            "odenet", width=4, downsampling_layers=1, solve_options={"solver": "euler", "dt": 0.5}, key=key
        ),
        lambda model, x: model(x)[0],
        (1, 8, 8, 1),
    ),
}
"""Each public model method that solves: (build the model, call it, one input's shape)."""


@pytest.mark.parametrize("name", list(SOLVING_METHODS))
def test_solving_methods_give_the_eager_result_under_jit_and_vmap(name):
    build, call, shape = SOLVING_METHODS[name]
    model = build(jax.random.PRNGKey(0))
    dtype = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))[0].dtype
    inputs = jax.random.normal(jax.random.PRNGKey(1), (2, *shape), dtype)
    eager = [call(model, x) for x in inputs]
    jitted = jax.jit(lambda x: call(model, x))(inputs[0])
    batched = jax.jit(jax.vmap(lambda x: call(model, x)))(inputs)
    tolerance = 1e-5 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(jitted, eager[0], rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(batched, np.stack(eager), rtol=tolerance, atol=tolerance)
