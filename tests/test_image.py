"""The image ODE-Net: IDX loading and checksums, the MNIST policy, model shapes and budgets,
the im2col convolution, NFE counts, and one real training epoch on a digits subset (float32)."""

import gzip
import hashlib
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pyode
from pyode._checkpoint import load_tree
from pyode._image import evaluate_images, resolve_image_settings, train_image_classifier, write_image_data
from pyode.data._images import (
    MNIST_SHA256,
    MNISTUnavailable,
    load_digits_split,
    normalise,
    prepare_mnist,
    random_crop,
    read_idx,
    verify_file,
    write_idx,
)
from pyode.models._image import im2col_conv, make_image_classifier, parameter_count, plain_conv

_OFF = "MNIST is off in the config (image.mnist.policy: off)"
FIELD_SOLVE = {"solver": "rk4", "adjoint": "checkpoint", "steps": 2}


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_gzipped_and_raw(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    path = tmp_path / ("images.gz" if compress else "images")
    write_idx(path, images, compress=compress)
    loaded = read_idx(path)
    assert loaded.dtype == np.uint8 and np.array_equal(loaded, images)


def test_truncated_or_corrupt_idx_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "labels", np.arange(10, dtype=np.uint8))
    data = (tmp_path / "labels").read_bytes()
    (tmp_path / "short").write_bytes(data[:-3])
    with pytest.raises(ValueError, match="truncated: shape \\(10,\\) needs 10 data bytes, found 7"):
        read_idx(tmp_path / "short")
    (tmp_path / "header").write_bytes(data[:6])
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(tmp_path / "header")
    (tmp_path / "magic").write_bytes(b"\x01\x02" + data[2:])
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "magic")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(data)[:-8])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        read_idx(tmp_path / "broken.gz")


def test_checksum_is_of_the_decompressed_content(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(6, dtype=np.uint8), compress=True)
    write_idx(tmp_path / "a", np.arange(6, dtype=np.uint8))
    digest = hashlib.sha256((tmp_path / "a").read_bytes()).hexdigest()
    verify_file(tmp_path / "a.gz", digest)
    verify_file(tmp_path / "a", digest)
    with pytest.raises(ValueError, match="checksum mismatch"):
        verify_file(tmp_path / "a.gz", "0" * 64)


def test_mnist_policy_offline(tmp_path):
    unreachable = ["http://127.0.0.1:9/"]
    split, reason = prepare_mnist(
        tmp_path, policy="auto", fetch_into=tmp_path, mirrors=unreachable, timeout=1
    )
    assert split is None and "could not download train-images-idx3-ubyte" in reason
    with pytest.raises(MNISTUnavailable, match="127.0.0.1"):
        prepare_mnist(tmp_path, policy="require", fetch_into=tmp_path, mirrors=unreachable, timeout=1)
    assert prepare_mnist(tmp_path, policy="off", fetch_into=None) == (None, _OFF)
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    split, reason = prepare_mnist(elsewhere, policy="auto", fetch_into=tmp_path)
    assert split is None and "is not the download folder" in reason


def test_mnist_files_with_a_wrong_checksum_are_refused(tmp_path):
    for name in MNIST_SHA256:
        write_idx(tmp_path / f"{name}.gz", np.zeros((2, 2), np.uint8), compress=True)
    split, reason = prepare_mnist(tmp_path, policy="auto", fetch_into=None)
    assert split is None and "checksum mismatch" in reason
    with pytest.raises(MNISTUnavailable, match="checksum mismatch"):
        prepare_mnist(tmp_path, policy="require", fetch_into=None)


def test_skipped_mnist_gives_skipped_metrics(tmp_path):
    reason = write_image_data("mnist", {"folder": str(tmp_path), "policy": "auto"}, tmp_path / "mnist.npz")
    metrics = train_image_classifier(tmp_path / "mnist.npz", {}, tmp_path / "run", progress=False)
    assert metrics["status"] == "skipped" and metrics["reason"] == reason
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "skipped"


def test_digits_split_and_normalisation():
    split = load_digits_split()
    assert split.x_train.shape == (1347, 8, 8) and split.x_test.shape == (450, 8, 8)
    assert np.bincount(split.y_test).min() >= 43  # stratified
    x = normalise(split.x_train, "digits", split.pixel_max)
    assert x.dtype == np.float32 and x.shape == (1347, 8, 8, 1)
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1) < 0.01
    cropped = random_crop(split.x_train[:4], 2, np.random.default_rng(0))
    assert cropped.shape == (4, 8, 8) and cropped.sum() <= split.x_train[:4].sum()


@pytest.mark.parametrize("size,stride,padding", [(3, 1, 1), (4, 2, 1), (1, 2, 0)])
def test_im2col_convolution_matches_plain_gradients(size, stride, padding):
    key_x, key_w = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(key_x, (3, 6, 8, 4))
    kernel = jax.random.normal(key_w, (size, size, 4, 7))

    def loss(conv):
        return lambda x_, w_: jnp.sum(jnp.sin(conv(x_, w_, stride, padding)))

    fast = jax.grad(loss(im2col_conv), (0, 1))(x, kernel)
    plain = jax.grad(loss(plain_conv), (0, 1))(x, kernel)
    for a, b in zip(fast, plain):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size,layers", [(28, 2), (8, 1)])
def test_model_shapes_and_comparable_budgets(size, layers):
    counts = {}
    for kind in ("odenet", "resnet", "noode"):
        model = make_image_classifier(
            kind, width=16, downsampling_layers=layers, solve_options=FIELD_SOLVE, key=jax.random.PRNGKey(0)
        )
        logits, nfe = model(jnp.zeros((3, size, size, 1), jnp.float32))
        assert logits.shape == (3, 10) and logits.dtype == jnp.float32
        assert int(nfe) == (8 if kind == "odenet" else 0)
        counts[kind] = parameter_count(model)
    for kind in ("resnet", "noode"):
        assert abs(counts[kind] - counts["odenet"]) / counts["odenet"] < 0.1, counts


@pytest.mark.parametrize(
    "solver,options",
    [("euler", {"steps": 3}), ("rk4", {"steps": 2}), ("dopri5", {"rtol": 1e-3, "atol": 1e-3})],
)
def test_nfe_counts(solver, options):
    solve_options = {"solver": solver, "adjoint": "checkpoint", **options}
    model = make_image_classifier(
        "odenet", width=8, downsampling_layers=1, solve_options=solve_options, key=jax.random.PRNGKey(1)
    )
    x = jax.random.normal(jax.random.PRNGKey(2), (4, 8, 8, 1), jnp.float32)
    t0, t1 = jnp.float32(0), jnp.float32(1)  # float32 times, as the ODE block uses (x64 is on here)
    solution = pyode.solve(model.middle.field, model.downsampling(x), t0=t0, t1=t1, **solve_options)
    with pyode.counting() as counts:
        _, nfe = jax.block_until_ready(eqx.filter_jit(model)(x))
    spec = pyode.SOLVERS[solver]
    if "rtol" in options:  # Diffrax's own statistics: FSAL, 1 + 6 evaluations per (tried) step
        expected = 1 + 6 * int(solution.num_steps)
    else:
        expected = spec.stages * options["steps"]
    assert int(nfe) == counts.forward == expected
    if "steps" in options:
        with pyode.counting() as counts:
            jax.block_until_ready(eqx.filter_grad(lambda m: jnp.sum(m(x)[0] ** 2))(model))
        assert counts.backward == expected


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown key"):
        resolve_image_settings({"model": {"widht": 3}})
    with pytest.raises(ValueError, match="no error estimate"):
        resolve_image_settings({"solve": {"solver": "rk4", "rtol": 1e-3, "atol": 1e-3}})
    with pytest.raises(ValueError, match="unknown schedule"):
        resolve_image_settings({"train": {"schedule": "linear"}})


def test_one_real_epoch_on_a_digits_subset_in_float32(tmp_path):
    write_image_data("digits", {}, tmp_path / "digits.npz")
    settings = {
        "data": {"train_subset": 256, "test_subset": 128, "crop_padding": 1},
        "model": {"width": 8, "downsampling_layers": 1, "dropout": 0.1},
        "solve": FIELD_SOLVE,
        "train": {
            "epochs": 2,
            "batch_size": 32,
            "learning_rate": 1e-2,
            "optimizer": "sgd",
            "schedule": "step",
            "milestones": [1],
            "weight_decay": 1e-4,
            "eval_batch_size": 100,
        },
    }
    metrics = train_image_classifier(tmp_path / "digits.npz", settings, tmp_path / "run", progress=False)
    assert metrics["status"] == "ok" and metrics["epochs"] == 2 and metrics["steps_per_epoch"] == 8
    assert metrics["mean_nfe_forward"] == metrics["mean_nfe_backward"] == 8
    assert 0 <= metrics["final_test_accuracy"] <= 1 and metrics["peak_rss_mib"] > 0
    assert [e["epoch"] for e in metrics["per_epoch"]] == [1, 2]
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert len(history) == 16
    like = make_image_classifier(
        "odenet",
        width=8,
        downsampling_layers=1,
        dropout=0.1,
        solve_options=FIELD_SOLVE,
        key=jax.random.PRNGKey(0),
    )
    model = load_tree(tmp_path / "run" / "model.eqx", like)
    assert model.linear.weight.dtype == jnp.float32
    split = load_digits_split()
    x = normalise(split.x_test[:50], "digits", 16.0)
    result = evaluate_images(model, x, split.y_test[:50], 32)
    assert 0 <= result["accuracy"] <= 1 and result["nfe_forward"] == 8
