"""The image ODE-Net: IDX loading and checksums, the MNIST policy, settings and plan, model shapes
and budgets, the im2col convolution, NFE counts and solve status, and one real training run on a
digits subset (float32) with its summary."""

import gzip
import hashlib
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pyode
from pyode.data import (
    MNISTUnavailable,
    image_split_sizes,
    load_digits_split,
    normalise,
    prepare_mnist,
    random_crop,
    read_idx,
)
from pyode.data._images import MNIST_SHA256, verify_file, write_idx
from pyode.experiments import SettingsError, image, read_history
from pyode.models import (
    IMAGE_MODEL_KINDS,
    ImageClassifier,
    load_model,
    make_image_classifier,
    parameter_count,
)
from pyode.models._image import im2col_conv, plain_conv

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


def test_mnist_files_with_a_wrong_checksum_are_an_error_under_every_policy(tmp_path):
    """Files someone put there are meant to be used: corrupt ones are not quietly skipped."""
    for name in MNIST_SHA256:
        write_idx(tmp_path / f"{name}.gz", np.zeros((2, 2), np.uint8), compress=True)
    for policy in ("auto", "require"):
        with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: checksum mismatch"):
            prepare_mnist(tmp_path, policy=policy, fetch_into=None)


def test_skipped_mnist_gives_skipped_metrics(tmp_path):
    data = image.resolve_data({"dataset": "mnist", "source": {"folder": str(tmp_path), "policy": "auto"}})
    reason = image.make_data(data, tmp_path / "mnist.npz")
    assert "is not the download folder" in reason
    assert image.load_data(tmp_path / "mnist.npz") == (None, reason)
    settings = image.resolve({"dataset": "mnist"})
    record = image.train(tmp_path / "mnist.npz", settings, tmp_path / "run", progress=False)
    assert record["status"] == "skipped" and record["reason"] == reason
    assert record["runs"] == [
        {"run": "mnist/odenet/rk4-checkpoint", "metrics": {}, "settings": settings.to_dict()}
    ]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == record
    assert not (tmp_path / "run" / "model.npz").exists()
    rows = image.summarise([record], tmp_path / "summary", dataset="mnist")
    assert [(row["run"], row["status"]) for row in rows] == [("odenet/rk4-checkpoint", "skipped")]
    assert f"Skipped: {reason}" in (tmp_path / "summary" / "summary.md").read_text()
    for name in ("summary.csv", "accuracy.png", "nfe.png", "time.png"):
        assert (tmp_path / "summary" / name).stat().st_size > 0, name


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
    assert IMAGE_MODEL_KINDS == ("odenet", "resnet", "noode")
    for kind in IMAGE_MODEL_KINDS:
        model = make_image_classifier(
            kind, width=16, downsampling_layers=layers, solve_options=FIELD_SOLVE, key=jax.random.PRNGKey(0)
        )
        logits, stats = model(jnp.zeros((3, size, size, 1), jnp.float32))
        assert logits.shape == (3, 10) and logits.dtype == jnp.float32
        assert set(stats) == {"nfe_forward", "solver_status"}
        assert int(stats["nfe_forward"]) == (8 if kind == "odenet" else 0)
        assert int(stats["solver_status"]) == 0
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
    spec = pyode.SOLVERS[solver]
    if "rtol" in options:  # two evaluations choose the first step; FSAL, 1 + 6 per (tried) step
        expected = 2 + 1 + 6 * int(solution.num_steps)
    else:
        expected = spec.stages * options["steps"]
    # A program traced outside `counted_programs` is bare: nothing reports to `counting`.
    with pyode.counting() as counts:
        _, stats = jax.block_until_ready(eqx.filter_jit(lambda m, x_: m(x_))(model, x))
    assert counts.forward == counts.backward == 0
    with pyode.counted_programs(), pyode.counting() as counts:
        _, counted_stats = jax.block_until_ready(eqx.filter_jit(lambda m, x_: m(x_))(model, x))
    assert int(stats["nfe_forward"]) == int(counted_stats["nfe_forward"]) == counts.forward == expected
    assert int(stats["solver_status"]) == int(counted_stats["solver_status"]) == 0
    if "steps" in options:
        with pyode.counted_programs(), pyode.counting() as counts:
            jax.block_until_ready(eqx.filter_grad(lambda m: jnp.sum(m(x)[0] ** 2))(model))
        assert counts.backward == expected


def test_a_failed_solve_is_reported_in_the_stats():
    """With throw=False a solve that runs out of steps returns; its status reaches the evaluation."""
    solve_options = {"solver": "dopri5", "rtol": 1e-8, "atol": 1e-8, "max_steps": 2, "throw": False}
    model = make_image_classifier(
        "odenet", width=4, downsampling_layers=1, solve_options=solve_options, key=jax.random.PRNGKey(1)
    )
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (4, 8, 8, 1), jnp.float32))
    with pytest.raises(RuntimeError, match="the solver failed on the test set: max_steps_reached"):
        image.evaluate_images(model, x, np.zeros(4, np.int32), 4)


def test_settings_are_checked():
    with pytest.raises(SettingsError, match=r"unknown key settings\.model\.widht"):
        image.resolve({"model": {"widht": 3}})
    with pytest.raises(SettingsError, match=r"settings\.solve: .*no error estimate"):
        image.resolve({"solve": {"solver": "rk4", "rtol": 1e-3, "atol": 1e-3}})
    with pytest.raises(SettingsError, match=r"settings\.train\.schedule is 'linear'; choose one of"):
        image.resolve({"train": {"schedule": "linear"}})
    with pytest.raises(
        SettingsError, match=r"settings\.model\.kind is 'vit'; choose one of odenet, resnet, noode"
    ):
        image.resolve({"model": {"kind": "vit"}})
    with pytest.raises(SettingsError, match=r"settings\.dataset is 'cifar'"):
        image.resolve_data({"dataset": "cifar"})
    adaptive = image.resolve({"solve": {"solver": "dopri5", "rtol": 1e-3, "atol": 1e-3}})
    assert adaptive.solve.steps is None and adaptive.run_name() == "odenet/dopri5-checkpoint"


def test_plan_runs_the_solver_grid_and_the_baselines():
    section = {
        "mnist": {"policy": False, "folder": "resources/mnist", "mirrors": [], "timeout": 1},
        "cifar10": {"policy": False, "folder": "resources/cifar10", "mirrors": [], "timeout": 1},
        "solvers": ["euler", "dopri5"],
        "augment": [0],
        "adjoints": ["checkpoint", "backsolve"],
        "baselines": ["resnet"],
        "solve": {"adaptive": ["dopri5"], "rtol": 1e-3, "atol": 1e-4, "steps": 3},
        "datasets": [
            {"name": "digits", "model": {"width": 8}, "train": {"epochs": 2}},
            {"name": "mnist", "data": {"train_subset": 200}},
        ],
    }
    runs = image.plan(section, seed=5)
    assert list(runs) == [
        f"{dataset}/{run}"
        for dataset in ("digits", "mnist")
        for run in (
            "odenet/euler-checkpoint",
            "odenet/euler-backsolve",
            "odenet/dopri5-checkpoint",
            "odenet/dopri5-backsolve",
            "resnet",
        )
    ]
    for name, settings in runs.items():
        assert name == f"{settings.dataset}/{settings.run_name()}" and settings.seed == 5
    euler, dopri5 = runs["digits/odenet/euler-backsolve"], runs["digits/odenet/dopri5-checkpoint"]
    assert euler.solve.options()["steps"] == 3 and "rtol" not in euler.solve.options()
    assert (dopri5.solve.rtol, dopri5.solve.atol, dopri5.solve.steps) == (1e-3, 1e-4, None)
    assert euler.model.width == runs["digits/resnet"].model.width == 8 and euler.train.epochs == 2
    assert runs["digits/resnet"].model.kind == "resnet"
    assert runs["mnist/resnet"].data.train_subset == 200
    assert runs["mnist/resnet"].source["policy"] == "off"  # `policy: false` in YAML is off
    split = {"name": "mnist", "split": {"test_fraction": 0.5}}
    with pytest.raises(SettingsError, match=r"^image.datasets\[mnist\].split has no effect: only the digits"):
        image.plan({**section, "datasets": [split]}, seed=5)


def test_one_real_training_run_on_a_digits_subset_in_float32(tmp_path):
    origin = image.make_data(image.resolve_data({"dataset": "digits"}), tmp_path / "digits.npz")
    assert "digits" in origin
    settings = image.resolve(
        {
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
    )
    record = image.train(tmp_path / "digits.npz", settings, tmp_path / "run", progress=False)
    assert record["experiment"] == "image" and record["status"] == "ok" and record["dtype"] == "float32"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == record
    (entry,) = record["runs"]
    assert entry["run"] == "digits/odenet/rk4-checkpoint" and entry["settings"] == settings.to_dict()
    metrics = entry["metrics"]
    assert metrics["epochs"] == 2 and metrics["steps_per_epoch"] == 8 and metrics["train_steps"] == 16
    assert metrics["train_images"] == 256 and metrics["test_images"] == 128
    assert (
        metrics["nfe_forward_per_step"]
        == metrics["nfe_backward_per_step"]
        == metrics["test_nfe_forward"]
        == 8
    )
    assert 0 <= metrics["final_test_accuracy"] <= 1 and metrics["peak_rss_mib"] > 0
    per_epoch = record["details"]["per_epoch"]
    assert [e["epoch"] for e in per_epoch] == [1, 2]
    assert per_epoch[-1]["test_accuracy"] == metrics["final_test_accuracy"]
    assert [e["nfe_forward"] for e in per_epoch] == [8, 8]
    assert [e["nfe_backward"] for e in per_epoch] == [8, None]  # counted at step 0 only (count_every 50)
    history = read_history(tmp_path / "run" / "history.jsonl")
    assert [r["step"] for r in history] == list(range(16))
    assert all({"loss", "accuracy", "nfe_forward", "seconds"} <= set(r) for r in history)
    assert [r["step"] for r in history if "nfe_backward" in r] == [0]
    assert not (tmp_path / "run" / "train-state").exists()
    model, metadata = load_model(tmp_path / "run" / "model.npz")
    assert isinstance(model, ImageClassifier) and metadata["settings"] == settings.to_dict()
    assert metadata["experiment"] == "image" and metadata["spec"]["solve_options"]["solver"] == "rk4"
    assert model.linear.weight.dtype == jnp.float32
    assert metrics["parameters"] == parameter_count(model)
    split = load_digits_split()
    x = normalise(split.x_test[:50], "digits", 16.0)
    result = image.evaluate_images(model, x, split.y_test[:50], 32)
    assert 0 <= result["accuracy"] <= 1 and result["nfe_forward"] == 8
    rows = image.summarise([record], tmp_path / "summary", dataset="digits")
    assert rows[0]["run"] == "odenet/rk4-checkpoint" and rows[0]["status"] == "ok"
    assert rows[0]["final_test_accuracy"] == metrics["final_test_accuracy"]
    assert "| odenet/rk4-checkpoint | ok |" in (tmp_path / "summary" / "summary.md").read_text()
    for name in ("summary.csv", "accuracy.png", "nfe.png", "time.png"):
        assert (tmp_path / "summary" / name).stat().st_size > 0, name


@pytest.mark.parametrize(
    "changes, named",
    [
        (
            {"data": {"train_subset": 100000}},
            "settings.data.train_subset is 100000; the digits training set has 1347 images",
        ),
        (
            {"data": {"test_subset": 451}},
            "settings.data.test_subset is 451; the digits test set has 450 images",
        ),
        (
            {"source": {"test_fraction": 0.5}, "data": {"train_subset": 899}},
            "settings.data.train_subset is 899; the digits training set has 898 images",
        ),
        (
            {"dataset": "mnist", "data": {"train_subset": 60001}},
            "settings.data.train_subset is 60001; the mnist training set has 60000 images",
        ),
        (
            {"dataset": "cifar10", "data": {"test_subset": 10001}},
            "settings.data.test_subset is 10001; the cifar10 test set has 10000 images",
        ),
        (
            {"train": {"batch_size": 1348}},
            "settings.train.batch_size is 1348; the training set has 1347 images",
        ),
        (
            {"data": {"train_subset": 64}, "train": {"batch_size": 128}},
            "settings.train.batch_size is 128; the training set has 64 images",
        ),
        (
            {"train": {"epochs": 10, "schedule": "step", "milestones": [5, 10]}},
            "settings.train.milestones is [5.0, 10.0]; each must lie in [0, 10), within train.epochs (10)",
        ),
        (
            {"train": {"schedule": "cosine", "milestones": [5]}},
            "settings.train.milestones is [5.0]: only the step schedule has milestones, and train.schedule "
            "is 'cosine'",
        ),
        (
            {"dataset": "cifar10", "source": {"test_fraction": 0.5}},
            "settings.source.test_fraction has no effect on cifar10; its source takes folder, policy, "
            "download_folder, mirrors, timeout",
        ),
    ],
)
def test_subsets_batches_and_milestones_the_data_cannot_take_are_named_when_resolved(changes, named):
    """Before any data is read: the sizes of the digits split, MNIST and CIFAR-10 are known."""
    with pytest.raises(SettingsError) as refused:
        image.resolve(changes)
    assert str(refused.value) == named


def test_the_known_sizes_are_the_data_and_the_edges_are_accepted():
    for test_fraction in (0.25, 0.5, 0.1):
        split = load_digits_split(test_fraction=test_fraction)
        assert image_split_sizes("digits", test_fraction=test_fraction) == (
            len(split.x_train),
            len(split.x_test),
        )
    assert image_split_sizes("mnist") == (60000, 10000) and image_split_sizes("cifar10") == (50000, 10000)
    whole = image.resolve({"data": {"train_subset": 1347, "test_subset": 450}, "train": {"batch_size": 1347}})
    assert whole.data.train_subset == 1347
    step = image.resolve({"train": {"epochs": 10, "schedule": "step", "milestones": [0, 9.5]}})
    assert step.train.milestones == (0.0, 9.5)


def test_data_smaller_than_the_settings_expect_is_refused_when_training(tmp_path):
    """A split made with other settings than the run's (here a larger test fraction) is checked again."""
    image.make_data(image.resolve_data({"source": {"test_fraction": 0.9}}), tmp_path / "digits.npz")
    too_many = image.resolve({"data": {"train_subset": 1000}})
    with pytest.raises(SettingsError, match="a subset of 1000 images was asked for; the data hold 179"):
        image.train(tmp_path / "digits.npz", too_many, tmp_path / "a", progress=False)
    too_big = image.resolve({"train": {"batch_size": 200}})
    with pytest.raises(SettingsError, match="train.batch_size is 200; the training set has 179 images"):
        image.train(tmp_path / "digits.npz", too_big, tmp_path / "b", progress=False)
    with pytest.raises(SettingsError, match="holds 'digits' images; the settings are for 'mnist'"):
        image.train(
            tmp_path / "digits.npz", image.resolve({"dataset": "mnist"}), tmp_path / "c", progress=False
        )
