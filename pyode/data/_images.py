"""Image data: MNIST from IDX files (read, verified, fetched) and scikit-learn's 8x8 digits."""

import gzip
import hashlib
import os
import shutil
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import CorruptFile, load_arrays, save_arrays

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# SHA-256 of the decompressed files (the gzip bytes depend on the compressor, the content does not).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_POLICIES = ("auto", "require", "off")
# Mean and standard deviation of the training pixels (scaled to [0, 1]).
PIXEL_STATISTICS = {"mnist": (0.1307, 0.3081), "digits": (0.3052, 0.3760)}

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class MNISTUnavailable(RuntimeError):
    """The MNIST files are neither present nor fetchable; the message says why."""


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed if it is gzip (recognised by its magic number)."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({error})") from None


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzipped or raw) as a NumPy array; a malformed file is a ValueError saying how."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    dims = data[3]
    header = 4 + 4 * dims
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes, {dims} dimensions need {header})")
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", dims, 4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise ValueError(f"{path}: {problem}: shape {shape} needs {expected} data bytes, found {found}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool = False) -> None:
    """Write an unsigned-byte array as an IDX file (gzipped if `compress`)."""
    array = np.asarray(array, np.uint8)
    data = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes() + array.tobytes()
    Path(path).write_bytes(gzip.compress(data) if compress else data)


def find_mnist_file(folder: str | Path, name: str) -> Path | None:
    """`name` or `name.gz` in `folder`, whichever exists (raw first)."""
    for candidate in (Path(folder) / name, Path(folder) / f"{name}.gz"):
        if candidate.exists():
            return candidate
    return None


def verify_file(path: str | Path, sha256: str) -> None:
    """Raise ValueError unless the decompressed content of `path` has this SHA-256."""
    digest = hashlib.sha256(_read_bytes(Path(path))).hexdigest()
    if digest != sha256:
        raise ValueError(f"{path}: checksum mismatch (sha256 {digest}, expected {sha256})")


def fetch_mnist(folder: str | Path, *, mirrors=MNIST_MIRRORS, timeout: float = 10.0) -> None:
    """Download the missing MNIST files into `folder`, verified; MNISTUnavailable says why not."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, sha256 in MNIST_SHA256.items():
        if find_mnist_file(folder, name) is not None:
            continue
        reasons = []
        for mirror in mirrors:
            url = f"{mirror.rstrip('/')}/{name}.gz"
            partial = folder / f".{name}.gz.partial"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as f:
                    shutil.copyfileobj(response, f)
                verify_file(partial, sha256)
            except (OSError, ValueError) as error:
                partial.unlink(missing_ok=True)
                reasons.append(f"{url}: {error}")
                continue
            os.replace(partial, folder / f"{name}.gz")
            break
        else:
            raise MNISTUnavailable(f"could not download {name}: " + "; ".join(reasons or ["no mirrors"]))


@dataclass(frozen=True)
class ImageSplit:
    """Images (N, H, W) of unsigned bytes-like values with integer labels, train and test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    pixel_max: float

    def save(self, path: str | Path) -> None:
        """Write one verified, uncompressed .npz (`pyode.save_arrays`; fast to read back)."""
        arrays = {name: getattr(self, name) for name in _IMAGE_ARRAYS}
        save_arrays(path, arrays, {"kind": "images", "name": self.name, "pixel_max": self.pixel_max})

    @classmethod
    def load(cls, path: str | Path) -> "ImageSplit":
        """Read a split written by `save`, verified."""
        arrays, meta = load_arrays(path)
        if meta.get("kind") != "images" or set(arrays) != set(_IMAGE_ARRAYS):
            raise CorruptFile(f"{path} is not an image split (it holds {sorted(arrays)})")
        return cls(meta["name"], **arrays, pixel_max=float(meta["pixel_max"]))


_IMAGE_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def load_mnist(folder: str | Path, *, verify: bool = True) -> ImageSplit:
    """MNIST from the four IDX files in `folder` (gzipped or raw), checksums verified."""
    arrays = {}
    for part, name in MNIST_FILES.items():
        path = find_mnist_file(folder, name)
        if path is None:
            raise FileNotFoundError(f"{Path(folder) / name}(.gz) is missing")
        if verify:
            verify_file(path, MNIST_SHA256[name])
        arrays[part] = read_idx(path)
    return ImageSplit(
        "mnist",
        arrays["train_images"],
        arrays["train_labels"].astype(np.int32),
        arrays["test_images"],
        arrays["test_labels"].astype(np.int32),
        255.0,
    )


def prepare_mnist(
    folder: str | Path,
    *,
    policy: str,
    fetch_into: str | Path | None,
    mirrors=MNIST_MIRRORS,
    timeout: float = 10.0,
) -> tuple[ImageSplit | None, str]:
    """MNIST under a data policy: the split (or None) and a sentence saying where it came from.

    `auto` returns None with the reason when the files are absent and cannot be fetched;
    `require` raises MNISTUnavailable with the reason; `off` returns None at once. Files are
    fetched only when `folder` is `fetch_into` (the download folder, resources/mnist). Files
    that are there but corrupt (a wrong checksum, a truncated file) are a ValueError naming
    the file under every policy: whoever put them there expects them used.
    """
    if policy not in MNIST_POLICIES:
        raise ValueError(f"unknown MNIST policy {policy!r}; choose one of {MNIST_POLICIES}")
    if policy == "off":
        return None, "MNIST is off in the config (image.mnist.policy: off)"
    folder = Path(folder)
    missing = [name for name in MNIST_SHA256 if find_mnist_file(folder, name) is None]
    try:
        if missing:
            if fetch_into is None or folder.resolve() != Path(fetch_into).resolve():
                raise MNISTUnavailable(f"{folder} lacks {', '.join(missing)} and is not the download folder")
            fetch_mnist(folder, mirrors=mirrors, timeout=timeout)
    except MNISTUnavailable as error:
        if policy == "require":
            raise
        return None, str(error)
    return load_mnist(folder), f"MNIST IDX files in {folder}, checksums verified"


def load_digits_split(*, test_fraction: float = 0.25, split_seed: int = 0) -> ImageSplit:
    """scikit-learn's 8x8 digits (values 0..16), split stratified by class with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images, labels = digits.images.astype(np.uint8), digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=split_seed, stratify=labels
    )
    return ImageSplit("digits", x_train, y_train, x_test, y_test, 16.0)


def normalise(images: np.ndarray, dataset: str, pixel_max: float) -> np.ndarray:
    """float32 NHWC images, scaled to [0, 1] then standardised with the training-set statistics."""
    mean, std = PIXEL_STATISTICS[dataset]
    return ((images.astype(np.float32) / pixel_max - mean) / std)[..., None]


def random_crop(images: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad (N, H, W) raw images by `padding` pixels and crop each back at a random offset."""
    if padding == 0:
        return images
    n, h, w = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding)))
    rows, cols = rng.integers(0, 2 * padding + 1, size=(2, n))
    row_index = rows[:, None, None] + np.arange(h)[None, :, None]
    col_index = cols[:, None, None] + np.arange(w)[None, None, :]
    return padded[np.arange(n)[:, None, None], row_index, col_index]
