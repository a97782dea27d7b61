"""CIFAR-10 in the image experiment: the binary batch format (on small files written here), its
size, checksum and archive checks, the download-or-skip policy offline, per-channel
standardisation and augmentation of colour images, and NODE, ANODE and ResNet on 3x32x32 input."""

import json
import tarfile

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pyode.cli import _exit_status
from pyode.data import (
    CIFAR10_FILES,
    CIFAR10Unavailable,
    ImageSplit,
    channel_statistics,
    cifar10_inputs,
    cifar10_lacks,
    load_cifar10,
    normalise,
    pixel_statistics,
    prepare_cifar10,
    random_crop,
    random_flip,
    read_cifar10_batch,
)
from pyode.data._images import (
    CIFAR10_ARCHIVE,
    CIFAR10_ARCHIVE_MD5,
    CIFAR10_FILE_BYTES,
    CIFAR10_SHA256,
    verify_cifar10_batch,
    write_cifar10_batch,
)
from pyode.experiments import SettingsError, image
from pyode.models import make_image_classifier

NAMES = [name for names in CIFAR10_FILES.values() for name in names]
UNREACHABLE = ["http://127.0.0.1:9/"]
SOLVE = {"solver": "euler", "adjoint": "checkpoint", "steps": 2}


def _record(label: int, red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> bytes:
    """One record as the format describes it: label byte, then the 32x32 planes R, G, B row-major."""
    return bytes([label]) + b"".join(plane.astype(np.uint8).tobytes() for plane in (red, green, blue))


def _images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, count)


def _write_batches(folder, records: int = 3):
    """Six small batch files (`records` each) and what they hold, train in file order, then test."""
    folder.mkdir(parents=True, exist_ok=True)
    held = {}
    for index, name in enumerate(NAMES):
        held[name] = _images(records, index)
        write_cifar10_batch(folder / name, *held[name])
    return held


def _write_archive(path, held, *, skip=()):
    """The archive's layout: cifar-10-batches-bin/<name> members, gzipped tar."""
    members = path.parent / ".members"
    members.mkdir(exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, (images, labels) in held.items():
            if name not in skip:
                write_cifar10_batch(members / name, images, labels)
                tar.add(members / name, arcname=f"cifar-10-batches-bin/{name}")


def test_batch_records_are_label_then_channel_major_planes(tmp_path):
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    planes = [(rows, cols, rows + cols), (cols, 255 - rows, rows * 3 % 256)]
    (tmp_path / "data_batch_1.bin").write_bytes(
        _record(7, *planes[0]) + _record(2, *planes[1]) + _record(9, *planes[0])
    )
    images, labels = read_cifar10_batch(tmp_path / "data_batch_1.bin")
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == [7, 2, 9] and labels.dtype == np.int32
    for image_, (red, green, blue) in zip(images, planes + planes[:1]):
        np.testing.assert_array_equal(image_[..., 0], red)  # image[row, col, channel]
        np.testing.assert_array_equal(image_[..., 1], green)
        np.testing.assert_array_equal(image_[..., 2], blue)
    assert images[0, 3, 5].tolist() == [3, 5, 8]  # the pixel at row 3, column 5: R, G, B
    written, written_labels = _images(4, 0)
    write_cifar10_batch(tmp_path / "round", written, written_labels)
    assert (tmp_path / "round").stat().st_size == 4 * 3073
    again, again_labels = read_cifar10_batch(tmp_path / "round")
    assert np.array_equal(again, written) and np.array_equal(again_labels, written_labels)


def test_truncated_or_corrupt_batch_is_one_clear_error_naming_the_file(tmp_path):
    images, labels = _images(3, 0)
    write_cifar10_batch(tmp_path / "data_batch_2.bin", images, labels)
    whole = (tmp_path / "data_batch_2.bin").read_bytes()
    (tmp_path / "data_batch_2.bin").write_bytes(whole[:-10])
    with pytest.raises(
        ValueError,
        match=r"data_batch_2\.bin: truncated or not a CIFAR-10 batch: 9209 bytes are 2 records of 3073 "
        r"bytes and 3063 bytes over",
    ):
        read_cifar10_batch(tmp_path / "data_batch_2.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.bin: empty, not a CIFAR-10 batch"):
        read_cifar10_batch(tmp_path / "empty.bin")
    (tmp_path / "label.bin").write_bytes(whole[:3073] + bytes([12]) + whole[3074:])
    with pytest.raises(ValueError, match=r"label\.bin: record 1 has label 12; CIFAR-10 labels are 0\.\.9"):
        read_cifar10_batch(tmp_path / "label.bin")
    # The full-data checks: a batch file's exact size, then its published SHA-256.
    with pytest.raises(
        ValueError,
        match=r"test_batch\.bin: truncated: 9219 bytes, a CIFAR-10 batch file has 30730000 "
        r"\(10000 records of 3073 bytes\)",
    ):
        verify_cifar10_batch(tmp_path / "test_batch.bin", whole)
    with pytest.raises(
        ValueError, match=r"test_batch\.bin: checksum mismatch \(sha256 [0-9a-f]{64}, expected 8e2eb1"
    ):
        verify_cifar10_batch(tmp_path / "test_batch.bin", bytes(CIFAR10_FILE_BYTES))
    assert CIFAR10_FILE_BYTES == 30_730_000 and CIFAR10_ARCHIVE_MD5 == "c32a1d4ab5d03f1284b67883e8d87530"
    assert list(CIFAR10_SHA256) == NAMES


def test_loose_batch_files_or_the_archive_give_the_same_split(tmp_path):
    held = _write_batches(tmp_path / "loose" / "cifar-10-batches-bin")
    split = load_cifar10(
        tmp_path / "loose", verify=False
    )  # small files: sizes and digests are not the real ones
    assert split.name == "cifar10" and split.pixel_max == 255.0
    assert split.x_train.shape == (15, 32, 32, 3) and split.x_test.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(split.x_train, np.concatenate([held[n][0] for n in NAMES[:5]]))
    np.testing.assert_array_equal(split.y_train, np.concatenate([held[n][1] for n in NAMES[:5]]))
    np.testing.assert_array_equal(split.y_test, held["test_batch.bin"][1])
    (tmp_path / "packed").mkdir()
    _write_archive(tmp_path / "packed" / CIFAR10_ARCHIVE, held)
    packed = load_cifar10(tmp_path / "packed", verify=False)
    for part in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(packed, part), getattr(split, part))
    assert cifar10_inputs(tmp_path / "packed") == [tmp_path / "packed" / CIFAR10_ARCHIVE]
    assert cifar10_lacks(tmp_path / "packed") == cifar10_lacks(tmp_path / "loose") == ""
    # Verified: the archive's published MD5 first, each batch file's size and SHA-256 next.
    with pytest.raises(
        ValueError, match=f"{CIFAR10_ARCHIVE}: checksum mismatch \\(md5 [0-9a-f]{{32}}, expected c32a1d"
    ):
        load_cifar10(tmp_path / "packed")
    with pytest.raises(ValueError, match=r"cifar-10-batches-bin/data_batch_1\.bin: truncated: 9219 bytes"):
        load_cifar10(tmp_path / "loose")


def test_a_broken_archive_is_one_clear_error(tmp_path):
    held = {name: _images(2, i) for i, name in enumerate(NAMES)}
    _write_archive(tmp_path / CIFAR10_ARCHIVE, held, skip={"data_batch_4.bin"})
    with pytest.raises(ValueError, match=r"holds no file cifar-10-batches-bin/data_batch_4\.bin"):
        load_cifar10(tmp_path, verify=False)
    _write_archive(tmp_path / CIFAR10_ARCHIVE, held)
    data = (tmp_path / CIFAR10_ARCHIVE).read_bytes()
    (tmp_path / CIFAR10_ARCHIVE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"{CIFAR10_ARCHIVE}: corrupt or truncated archive"):
        load_cifar10(tmp_path, verify=False)


def test_what_a_folder_lacks_is_named(tmp_path):
    lacks = cifar10_lacks(tmp_path)
    assert lacks == (
        "cifar-10-binary.tar.gz and data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, "
        "data_batch_4.bin, data_batch_5.bin, test_batch.bin (the archive or all six batch files will do)"
    )
    write_cifar10_batch(tmp_path / "data_batch_1.bin", *_images(1, 0))
    assert "data_batch_1.bin" not in cifar10_lacks(tmp_path) and "data_batch_2.bin" in cifar10_lacks(tmp_path)
    assert cifar10_inputs(tmp_path) == [tmp_path / "data_batch_1.bin"]


def test_policy_offline(tmp_path):
    split, reason = prepare_cifar10(
        tmp_path, policy="auto", fetch_into=tmp_path, mirrors=UNREACHABLE, timeout=1
    )
    assert split is None
    assert reason.startswith(
        "could not download cifar-10-binary.tar.gz: http://127.0.0.1:9/cifar-10-binary.tar.gz"
    )
    assert list(tmp_path.iterdir()) == []  # nothing half-downloaded is left behind
    with pytest.raises(CIFAR10Unavailable, match="could not download cifar-10-binary.tar.gz: .*127.0.0.1"):
        prepare_cifar10(tmp_path, policy="require", fetch_into=tmp_path, mirrors=UNREACHABLE, timeout=1)
    assert prepare_cifar10(tmp_path, policy="off", fetch_into=None) == (
        None,
        "CIFAR-10 is off in the config (image.cifar10.policy: off)",
    )
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    split, reason = prepare_cifar10(elsewhere, policy="auto", fetch_into=tmp_path)
    assert (
        split is None
        and reason == f"{elsewhere} lacks {cifar10_lacks(elsewhere)} and is not the download folder"
    )
    with pytest.raises(CIFAR10Unavailable, match="lacks cifar-10-binary.tar.gz and data_batch_1.bin"):
        prepare_cifar10(elsewhere, policy="require", fetch_into=tmp_path)
    with pytest.raises(ValueError, match="unknown CIFAR-10 policy 'maybe'"):
        prepare_cifar10(elsewhere, policy="maybe", fetch_into=None)
    assert _exit_status(CIFAR10Unavailable("offline")) == 2  # `pyode image-data`: one line, exit 2


def test_files_that_are_there_but_wrong_are_an_error_under_every_policy(tmp_path):
    """Whoever put them there expects them used: a bad file is not quietly skipped."""
    _write_batches(tmp_path)
    for policy in ("auto", "require"):
        with pytest.raises(ValueError, match=r"data_batch_1\.bin: truncated: 9219 bytes"):
            prepare_cifar10(tmp_path, policy=policy, fetch_into=None)


def test_skipped_cifar10_gives_skipped_metrics_with_the_reason(tmp_path):
    source = {"folder": str(tmp_path / "nowhere"), "policy": "auto", "download_folder": "resources/cifar10"}
    data = image.resolve_data({"dataset": "cifar10", "source": source})
    reason = image.make_data(data, tmp_path / "cifar10.npz")
    assert reason.endswith("(the archive or all six batch files will do) and is not the download folder")
    settings = image.resolve({"dataset": "cifar10", "model": {"augment": 4}})
    record = image.train(tmp_path / "cifar10.npz", settings, tmp_path / "run", progress=False)
    assert record["status"] == "skipped" and record["reason"] == reason
    assert record["runs"][0]["run"] == "cifar10/anode4/rk4-checkpoint"


def test_per_channel_statistics_and_standardisation():
    images, _ = _images(50, 3)
    images[..., 2] //= 2  # channels with different statistics
    mean, std = channel_statistics(images, 255.0)
    scaled = images / 255.0
    np.testing.assert_allclose(mean, scaled.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, scaled.std(axis=(0, 1, 2)), rtol=1e-12)
    x = normalise(images, "cifar10", 255.0, statistics=(mean, std))
    assert x.dtype == np.float32 and x.shape == (50, 32, 32, 3)
    np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 1, 2)), 1, atol=1e-4)
    split = ImageSplit("cifar10", images, np.zeros(50, np.int32), images[:5], np.zeros(5, np.int32), 255.0)
    assert pixel_statistics(split) == (mean, std)
    with pytest.raises(ValueError, match="cifar10 has no fixed pixel statistics"):
        normalise(images, "cifar10", 255.0)
    digits = np.arange(64, dtype=np.uint8).reshape(1, 8, 8) % 17
    assert np.array_equal(
        normalise(digits, "digits", 16.0), ((digits.astype(np.float32) / 16 - 0.3052) / 0.3760)[..., None]
    )


def test_crop_and_flip_augment_colour_images():
    images, _ = _images(64, 4)
    cropped = random_crop(images, 4, np.random.default_rng(0))
    assert cropped.shape == images.shape and cropped.dtype == np.uint8
    assert not np.array_equal(cropped, images)
    assert np.array_equal(random_crop(images, 0, np.random.default_rng(0)), images)
    flipped = random_flip(images, np.random.default_rng(1))
    mirrored = [np.array_equal(f, i[:, ::-1]) for f, i in zip(flipped, images)]
    kept = [np.array_equal(f, i) for f, i in zip(flipped, images)]
    assert all(m or k for m, k in zip(mirrored, kept)) and 16 < sum(mirrored) < 48


def _colour_batch():
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 32, 32, 3), jnp.float32)
    return x, jnp.array([3, 9])


@eqx.filter_jit
def _forward_and_step(model, x, y):
    """Logits, the ODE block's state (if any), and the model after one SGD step: one compilation."""

    def loss(m):
        logits, stats = m(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), (logits, stats)

    (value, (logits, stats)), grads = eqx.filter_value_and_grad(loss, has_aux=True)(model)
    features = model.downsampling(x)
    state = model.middle(features)[0] if hasattr(model.middle, "field") else features
    optimiser = optax.sgd(0.1)
    updates, _ = optimiser.update(grads, optimiser.init(eqx.filter(model, eqx.is_inexact_array)))
    updated = eqx.apply_updates(model, updates)
    return value, logits, stats, features, state, grads, loss(updated)[0]


@pytest.mark.parametrize(
    "kind,augment", [("odenet", 0), ("odenet", 4), ("resnet", 0)], ids=["node", "anode", "resnet"]
)
def test_node_anode_and_resnet_on_3x32x32_images(kind, augment):
    """A forward pass and one training step on random colour images (NHWC, RGB last)."""
    x, y = _colour_batch()
    model = make_image_classifier(
        kind, channels=3, width=4, augment=augment, solve_options=SOLVE, key=jax.random.PRNGKey(0)
    )
    assert model.downsampling.stem.kernel.shape == (3, 3, 3, 4)  # RGB in
    value, logits, stats, features, state, grads, after = _forward_and_step(model, x, y)
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    assert features.shape == (2, 8, 8, 4)  # two stride-2 stages: 32 -> 8
    if kind == "odenet":
        assert state.shape == (2, 8, 8, 4 + augment)  # ANODE: the zero channels travel with the state
        assert model.middle.field.convs[0].kernel.shape == (3, 3, 4 + augment + 1, 4 + augment)
        assert model.linear.weight.shape == (10, 4 + augment)
        assert int(stats["nfe_forward"]) == 2
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree_util.tree_leaves(grads)]
    assert np.isfinite(float(value)) and np.isfinite(float(after)) and float(after) != float(value)
    assert all(np.isfinite(norms)) and max(norms) > 0


def test_augment_zero_is_the_plain_ode_block():
    x, _ = _colour_batch()
    key = jax.random.PRNGKey(5)
    plain = make_image_classifier("odenet", channels=3, width=8, solve_options=SOLVE, key=key)
    zero = make_image_classifier("odenet", channels=3, width=8, augment=0, solve_options=SOLVE, key=key)
    assert bool(eqx.tree_equal(plain, zero)) and zero.middle.augment == 0
    # An ANODE block starts from the state with zero channels appended: with its field silenced
    # (the last norm's scale and shift zero) the state stays there.
    anode = make_image_classifier("odenet", channels=3, width=8, augment=4, solve_options=SOLVE, key=key)
    still = eqx.tree_at(
        lambda m: (m.middle.field.norms[2].scale, m.middle.field.norms[2].shift),
        anode,
        (jnp.zeros(12, jnp.float32), jnp.zeros(12, jnp.float32)),
    )
    features = anode.downsampling(x)
    state, _ = eqx.filter_jit(lambda m, f: m.middle(f))(still, features)
    np.testing.assert_array_equal(state[..., :8], features)
    np.testing.assert_array_equal(state[..., 8:], 0)
    with pytest.raises(
        ValueError, match="augment is 2: zero channels are appended to an odenet's ODE block only"
    ):
        make_image_classifier("resnet", channels=3, width=8, augment=2, key=key)
    with pytest.raises(
        SettingsError, match=r"settings\.model\.augment is 2: .*model\.kind 'resnet' has no ODE block"
    ):
        image.resolve({"model": {"kind": "resnet", "augment": 2}})


def test_plan_runs_node_and_anode_grids_and_the_baseline_on_cifar10():
    section = {
        "mnist": {"policy": False, "folder": "resources/mnist", "mirrors": [], "timeout": 1},
        "cifar10": {"policy": "require", "folder": "elsewhere", "mirrors": ["m/"], "timeout": 3},
        "solvers": ["dopri5"],
        "adjoints": ["checkpoint"],
        "augment": [0, 16],
        "baselines": ["resnet"],
        "solve": {"adaptive": ["dopri5"], "rtol": 1e-3, "atol": 1e-3, "steps": 4},
        "datasets": [{"name": "cifar10", "data": {"crop_padding": 4, "horizontal_flip": True}}],
    }
    runs = image.plan(section, seed=1)
    assert list(runs) == [
        "cifar10/odenet/dopri5-checkpoint",
        "cifar10/anode16/dopri5-checkpoint",
        "cifar10/resnet",
    ]
    assert [r.model.augment for r in runs.values()] == [0, 16, 0]
    for name, settings in runs.items():
        assert name == f"cifar10/{settings.run_name()}"
        assert settings.data.horizontal_flip and settings.data.crop_padding == 4
        assert settings.source == {
            "folder": "elsewhere",
            "policy": "require",
            "download_folder": "resources/cifar10",
            "mirrors": ["m/"],
            "timeout": 3,
        }


def test_one_tiny_training_run_on_colour_images(tmp_path):
    """The experiment end to end on a made-up 3x32x32 split: channels, per-channel statistics,
    crops and flips, an ANODE block; a few seconds (compilation dominates)."""
    images, labels = _images(40, 6)
    ImageSplit(
        "cifar10", images[:32], labels[:32].astype(np.int32), images[32:], labels[32:].astype(np.int32), 255.0
    ).save(tmp_path / "cifar10.npz")
    settings = image.resolve(
        {
            "dataset": "cifar10",
            "data": {"crop_padding": 2, "horizontal_flip": True},
            "model": {"width": 4, "augment": 4},
            "solve": SOLVE,
            "train": {"epochs": 1, "batch_size": 16, "eval_batch_size": 8, "learning_rate": 1e-2},
        }
    )
    record = image.train(tmp_path / "cifar10.npz", settings, tmp_path / "run", progress=False)
    assert record["status"] == "ok" and record["runs"][0]["run"] == "cifar10/anode4/euler-checkpoint"
    metrics = record["runs"][0]["metrics"]
    assert (
        metrics["train_steps"] == 2 and metrics["test_images"] == 8 and metrics["nfe_forward_per_step"] == 2
    )
    mean, std = channel_statistics(images[:32], 255.0)
    assert record["details"]["pixel_mean"] == list(mean) and record["details"]["pixel_std"] == list(std)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == record
