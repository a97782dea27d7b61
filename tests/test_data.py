"""Synthetic data sets: shapes, classes, determinism, noise, sizes, verified files and errors."""

import dataclasses

import numpy as np
import pytest

import pyode
from pyode.data import (
    DensitySamples,
    ImageSplit,
    Paths,
    PositionSeries,
    SpiralSeries,
    Split,
    Trajectories,
    concentric_circles,
    make_split,
    split_sizes,
    two_spirals,
)


@pytest.mark.parametrize("generator", [two_spirals, concentric_circles])
def test_shapes_balance_and_determinism(generator):
    x, y = generator(100, seed=3)
    assert x.shape == (200, 2) and y.shape == (200,)
    assert np.bincount(y).tolist() == [100, 100]
    x_again, y_again = generator(100, seed=3)
    np.testing.assert_array_equal(x, x_again)
    np.testing.assert_array_equal(y, y_again)
    x_other, _ = generator(100, seed=4)
    assert not np.allclose(x, x_other)


def test_spirals_make_the_requested_turns():
    x, y = two_spirals(2000, turns=1.5, noise=0.0, seed=0)
    arm = x[y == 0]
    radius = np.linalg.norm(arm, axis=1)
    order = np.argsort(radius)
    angle = np.unwrap(np.arctan2(arm[order, 1], arm[order, 0]))
    assert abs(angle[-1] - angle[0]) / (2 * np.pi) == pytest.approx(1.5, abs=0.02)
    for label in (0, 1):  # both arms run from radius 0.1 out to 1
        radius = np.linalg.norm(x[y == label], axis=1)
        assert radius.min() == pytest.approx(0.1, abs=0.01) and radius.max() == pytest.approx(1.0, abs=0.01)


def test_spiral_noise_level():
    clean, _ = two_spirals(500, noise=0.0, seed=1)
    noisy, _ = two_spirals(500, noise=0.1, seed=1)
    assert np.std(noisy - clean) == pytest.approx(0.1, rel=0.1)


def test_circles_disc_inside_ring():
    x, y = concentric_circles(500, inner_radius=0.5, ring=(1.0, 1.5), noise=0.0, seed=0)
    radius = np.linalg.norm(x, axis=1)
    assert radius[y == 0].max() <= 0.5
    assert radius[y == 1].min() >= 1.0 and radius[y == 1].max() <= 1.5


def test_split_round_trip(tmp_path):
    split = make_split("circles", test_fraction=0.25, seed=2, points_per_class=40)
    assert len(split.x_test) == 20 and len(split.x_train) == 60
    assert split.x_train.dtype == np.float32
    split.save(tmp_path / "circles.npz")
    loaded = Split.load(tmp_path / "circles.npz")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(split, name))
        assert getattr(loaded, name).dtype == getattr(split, name).dtype
    _, metadata = pyode.load_arrays(tmp_path / "circles.npz")  # a verified pyode array file
    assert metadata["kind"] == "split"


@pytest.mark.parametrize(
    "dataset, options",
    [
        ("circles", {"test_fraction": 0.25, "points_per_class": 40}),
        ("spiral", {"points_per_class": 33}),
        ("spiral", {"test_fraction": 0.1, "points_per_class": 7, "turns": 2.0}),
        ("circles", {}),
    ],
)
def test_split_sizes_match_the_split(dataset, options):
    split = make_split(dataset, seed=0, **options)
    assert split_sizes(dataset, **options) == (len(split.x_train), len(split.x_test))


def test_split_sizes_check_their_options():
    with pytest.raises(ValueError, match="unknown dataset 'moons'"):
        split_sizes("moons")
    with pytest.raises(ValueError, match="unknown option.*'ring'.*'spiral'"):
        split_sizes("spiral", ring=[1, 2])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: make_split("moons"), "unknown dataset 'moons'"),
        (lambda: make_split("spiral", test_fraction=1.5), "test_fraction"),
        (lambda: two_spirals(10, noise=-1), "noise"),
        (lambda: concentric_circles(10, inner_radius=1.2), "inner_radius"),
        (lambda: make_split("spiral", ring=[1, 2]), "unknown option.*'ring'.*'spiral'"),
    ],
)
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_loading_something_else_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))  # an .npz, but not a verified pyode file
    with pytest.raises(pyode.CorruptFile, match="other.npz"):
        Split.load(tmp_path / "other.npz")
    pyode.save_arrays(tmp_path / "arrays.npz", {"a": np.zeros(3)}, {"kind": "something"})
    with pytest.raises(pyode.CorruptFile, match="arrays.npz is not a two-class data split"):
        Split.load(tmp_path / "arrays.npz")


SAVED_FORMATS = {  # the array names and metadata keys of files already written: they must still load
    Split: (["x_train", "y_train", "x_test", "y_test"], {"kind": "split"}),
    ImageSplit: (
        ["x_train", "y_train", "x_test", "y_test"],
        {"kind": "images", "name": "digits", "pixel_max": 16.0},
    ),
    DensitySamples: (
        ["x_train", "x_test"],
        {"kind": "density_samples", "density": "moons", "options": {"a": 1}},
    ),
    Trajectories: (
        ["initial_states", "ts", "ys", "ys_true", "extrapolation_ts", "extrapolation_ys_true"],
        {"kind": "trajectories", "system": "vdp", "settings": {"mu": 1.0}, "noise": 0.1},
    ),
    PositionSeries: (
        [
            "ts",
            "extrapolation_ts",
            "initial",
            "observed",
            "truth",
            "extrapolation_truth",
            "test_initial",
            "test_truth",
        ],
        {"kind": "positions", "task": "crossing", "settings": {}, "noise": 0.2},
    ),
    Paths: (["ts", "xs"], {"kind": "paths", "process": "ou", "options": {"theta": 1.0}, "train_paths": 2}),
    SpiralSeries: (
        ["grid"]
        + [
            f"{part}_{name}"
            for part in ("train", "test")
            for name in ("truth", "noisy", "index", "clockwise")
        ],
        {"kind": "spirals", "settings": {"a": 0.0}, "noise": 0.3, "window": 2},
    ),
}


@pytest.mark.parametrize("data_class", SAVED_FORMATS, ids=lambda data_class: data_class.__name__)
def test_data_files_keep_their_format_and_refuse_another_kind(data_class, tmp_path):
    names, metadata = SAVED_FORMATS[data_class]
    arrays = {name: np.arange(i, i + 3.0) for i, name in enumerate(names)}
    pyode.save_arrays(tmp_path / "old.npz", arrays, metadata)
    loaded = data_class.load(tmp_path / "old.npz")
    for name, value in {**arrays, **metadata}.items():
        if name != "kind":
            np.testing.assert_array_equal(getattr(loaded, name), value)
    loaded.save(tmp_path / "new.npz")
    assert (tmp_path / "new.npz").read_bytes() == (tmp_path / "old.npz").read_bytes()
    pyode.save_arrays(tmp_path / "other.npz", arrays, {**metadata, "kind": "other"})
    with pytest.raises(pyode.CorruptFile, match=r"other\.npz (is not|does not hold) .* \(it holds \["):
        data_class.load(tmp_path / "other.npz")
    assert {field.name for field in dataclasses.fields(data_class)} == set(names) | set(metadata) - {"kind"}


def test_a_corrupted_split_is_refused(tmp_path):
    path = tmp_path / "spiral.npz"
    make_split("spiral", seed=0, points_per_class=50).save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(pyode.CorruptFile, match="spiral.npz"):
        Split.load(path)
