"""Image data: MNIST from IDX files and CIFAR-10 from its binary batches (read, verified,
fetched), and scikit-learn's 8x8 digits."""

import gzip
import hashlib
import math
import os
import shutil
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import MissingFile, UserError
from ._saved import SavedAsArrays

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
MNIST_IMAGES = {"train": 60_000, "test": 10_000}
"""Images in MNIST's training and test files."""
DIGITS_IMAGES = 1797
"""Images in scikit-learn's 8x8 digits (`sklearn.datasets.load_digits`)."""
DIGITS_TEST_FRACTION = 0.25
"""The share of the digits in `load_digits_split`'s test set unless told otherwise."""
# What a data set that has to be fetched does when its files are missing (image.<name>.policy).
DATA_POLICIES = ("auto", "require", "off")
MNIST_POLICIES = DATA_POLICIES
# Mean and standard deviation of the training pixels (scaled to [0, 1]); other data sets'
# per-channel statistics are computed from their training images (`pixel_statistics`).
PIXEL_STATISTICS = {"mnist": (0.1307, 0.3081), "digits": (0.3052, 0.3760)}

# CIFAR-10, binary version (https://www.cs.toronto.edu/~kriz/cifar.html): the archive holds
# cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin, each 10,000 records of one label byte and
# 3072 pixel bytes (the 32x32 red plane, then green, then blue, each row-major).
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
# The MD5 the dataset's page publishes for the binary archive (torchvision fetches the Python
# version, c58f3010..., so its source does not hold this one).
CIFAR10_ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
# SHA-256 of the six batch files as the archive holds them (torchvision-ruby's CIFAR10 checks the
# same digests; test_batch.bin's is also published by other projects that verify it).
CIFAR10_SHA256 = {
    "data_batch_1.bin": "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
    "data_batch_2.bin": "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
    "data_batch_3.bin": "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
    "data_batch_4.bin": "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
    "data_batch_5.bin": "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
    "test_batch.bin": "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
}
CIFAR10_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_SIDE = 32
CIFAR10_RECORD_BYTES = 1 + 3 * CIFAR10_SIDE * CIFAR10_SIDE  # 3073
CIFAR10_RECORDS_PER_FILE = 10_000
CIFAR10_FILE_BYTES = CIFAR10_RECORDS_PER_FILE * CIFAR10_RECORD_BYTES  # 30,730,000

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataUnavailable(UserError, RuntimeError):
    """A data set's files are neither present nor fetchable; the message says why."""


class MNISTUnavailable(DataUnavailable):
    """The MNIST files are neither present nor fetchable; the message says why."""


class CIFAR10Unavailable(DataUnavailable):
    """The CIFAR-10 files are neither present nor fetchable; the message says why."""


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
class ImageSplit(SavedAsArrays):
    """Images (N, H, W) of unsigned bytes-like values with integer labels, train and test."""

    KIND = "images"
    ARRAYS = ("x_train", "y_train", "x_test", "y_test")
    NOT_THIS = "is not an image split"

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    pixel_max: float


def load_mnist(folder: str | Path, *, verify: bool = True) -> ImageSplit:
    """MNIST from the four IDX files in `folder` (gzipped or raw), checksums verified."""
    arrays = {}
    for part, name in MNIST_FILES.items():
        path = find_mnist_file(folder, name)
        if path is None:
            raise MissingFile(f"{Path(folder) / name}(.gz) is missing")
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
    folder = Path(folder)
    missing = [name for name in MNIST_SHA256 if find_mnist_file(folder, name) is None]
    return _under_policy(
        "MNIST",
        "mnist",
        policy,
        folder,
        fetch_into,
        lacking=", ".join(missing),
        fetch=lambda: fetch_mnist(folder, mirrors=mirrors, timeout=timeout),
        load=lambda: (load_mnist(folder), f"MNIST IDX files in {folder}, checksums verified"),
        unavailable=MNISTUnavailable,
    )


def _under_policy(label, key, policy, folder, fetch_into, *, lacking, fetch, load, unavailable):
    """A data set under a data policy (see `prepare_mnist`): fetch what is `lacking` into the
    download folder if it is that, then load; or None and the reason, or `unavailable` raised."""
    if policy not in DATA_POLICIES:
        raise ValueError(f"unknown {label} policy {policy!r}; choose one of {DATA_POLICIES}")
    if policy == "off":
        return None, f"{label} is off in the config (image.{key}.policy: off)"
    try:
        if lacking:
            if fetch_into is None or Path(folder).resolve() != Path(fetch_into).resolve():
                raise unavailable(f"{folder} lacks {lacking} and is not the download folder")
            fetch()
    except unavailable as error:
        if policy == "require":
            raise
        return None, str(error)
    return load()


def read_cifar10_batch(path: str | Path, data: bytes | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 binary batch file as (N, 32, 32, 3) unsigned-byte images and (N,) int32 labels.

    Each record is one label byte (0..9) and 3072 pixel bytes: the red plane, then green, then
    blue, each 32 rows of 32. `data` are the file's bytes when they are already read (from the
    archive); `path` then only names them in errors. A file that is not whole records, or holds
    a label outside 0..9, is a ValueError naming it.
    """
    data = Path(path).read_bytes() if data is None else data
    count, over = divmod(len(data), CIFAR10_RECORD_BYTES)
    if not data:
        raise ValueError(f"{path}: empty, not a CIFAR-10 batch")
    if over:
        raise ValueError(
            f"{path}: truncated or not a CIFAR-10 batch: {len(data)} bytes are {count} records of "
            f"{CIFAR10_RECORD_BYTES} bytes and {over} bytes over"
        )
    records = np.frombuffer(data, np.uint8).reshape(count, CIFAR10_RECORD_BYTES)
    labels = records[:, 0].astype(np.int32)
    if labels.max() >= len(CIFAR10_CLASSES):
        index = int(np.argmax(labels >= len(CIFAR10_CLASSES)))
        raise ValueError(f"{path}: record {index} has label {labels[index]}; CIFAR-10 labels are 0..9")
    side = CIFAR10_SIDE
    images = records[:, 1:].reshape(count, 3, side, side).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def write_cifar10_batch(path: str | Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write (N, 32, 32, 3) unsigned-byte images and their labels as a CIFAR-10 binary batch."""
    images = np.asarray(images, np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
    records = np.concatenate([np.asarray(labels, np.uint8)[:, None], images], axis=1)
    Path(path).write_bytes(records.tobytes())


def find_cifar10_files(folder: str | Path) -> dict[str, Path | None]:
    """Each batch file in `folder` or in its cifar-10-batches-bin/ (as the archive unpacks), or None."""
    found = {}
    for name in CIFAR10_SHA256:
        candidates = (Path(folder) / name, Path(folder) / CIFAR10_FOLDER / name)
        found[name] = next((path for path in candidates if path.exists()), None)
    return found


def cifar10_inputs(folder: str | Path) -> list[Path]:
    """The CIFAR-10 files present in `folder` that `load_cifar10` would read (archive, batches)."""
    archive = Path(folder) / CIFAR10_ARCHIVE
    return [path for path in find_cifar10_files(folder).values() if path] + (
        [archive] if archive.exists() else []
    )


def cifar10_lacks(folder: str | Path) -> str:
    """What `folder` lacks for CIFAR-10 ('' when the archive or all six batch files are there)."""
    missing = [name for name, path in find_cifar10_files(folder).items() if path is None]
    if not missing or (Path(folder) / CIFAR10_ARCHIVE).exists():
        return ""
    return f"{CIFAR10_ARCHIVE} and {', '.join(missing)} (the archive or all six batch files will do)"


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_cifar10_archive(path: str | Path) -> None:
    """Raise ValueError unless `path` has the published MD5 of the binary CIFAR-10 archive."""
    digest = _md5(Path(path))
    if digest != CIFAR10_ARCHIVE_MD5:
        raise ValueError(f"{path}: checksum mismatch (md5 {digest}, expected {CIFAR10_ARCHIVE_MD5})")


def verify_cifar10_batch(path: str | Path, data: bytes) -> None:
    """Raise ValueError naming `path` unless `data` are the batch file's size and SHA-256."""
    name = Path(path).name
    if len(data) != CIFAR10_FILE_BYTES:
        problem = "truncated" if len(data) < CIFAR10_FILE_BYTES else "has trailing bytes"
        raise ValueError(
            f"{path}: {problem}: {len(data)} bytes, a CIFAR-10 batch file has {CIFAR10_FILE_BYTES} "
            f"({CIFAR10_RECORDS_PER_FILE} records of {CIFAR10_RECORD_BYTES} bytes)"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != CIFAR10_SHA256[name]:
        raise ValueError(f"{path}: checksum mismatch (sha256 {digest}, expected {CIFAR10_SHA256[name]})")


def fetch_cifar10(folder: str | Path, *, mirrors=CIFAR10_MIRRORS, timeout: float = 10.0) -> None:
    """Download the binary CIFAR-10 archive into `folder`, verified; CIFAR10Unavailable says why not."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    reasons = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{CIFAR10_ARCHIVE}"
        partial = folder / f".{CIFAR10_ARCHIVE}.partial"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as f:
                shutil.copyfileobj(response, f)
            verify_cifar10_archive(partial)
        except (OSError, ValueError) as error:
            partial.unlink(missing_ok=True)
            reasons.append(f"{url}: {error}")
            continue
        os.replace(partial, folder / CIFAR10_ARCHIVE)
        return
    raise CIFAR10Unavailable(f"could not download {CIFAR10_ARCHIVE}: " + "; ".join(reasons or ["no mirrors"]))


def _cifar10_bytes(folder: Path, *, verify: bool) -> dict[str, tuple[str, bytes]]:
    """Each batch file's bytes and the name errors give it: the loose files if all six are
    there, else the archive's members (the archive's MD5 checked first, nothing unpacked)."""
    found = find_cifar10_files(folder)
    if all(found.values()):
        return {name: (str(path), path.read_bytes()) for name, path in found.items()}
    archive = folder / CIFAR10_ARCHIVE
    if not archive.exists():
        raise MissingFile(f"{folder} lacks {cifar10_lacks(folder)}")
    if verify:
        verify_cifar10_archive(archive)
    files = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in CIFAR10_SHA256:
                member = f"{CIFAR10_FOLDER}/{name}"
                try:
                    handle = tar.extractfile(member)
                except KeyError:
                    handle = None
                if handle is None:
                    raise ValueError(f"{archive}: holds no file {member}")
                files[name] = (f"{archive}:{member}", handle.read())
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise ValueError(f"{archive}: corrupt or truncated archive ({error})") from None
    return files


def load_cifar10(folder: str | Path, *, verify: bool = True) -> ImageSplit:
    """CIFAR-10 from the six binary batch files in `folder` (or its cifar-10-batches-bin/), or
    from the binary archive there; sizes and checksums verified (`verify`)."""
    parts = {"train": ([], []), "test": ([], [])}
    files = _cifar10_bytes(Path(folder), verify=verify)
    for part, names in CIFAR10_FILES.items():
        for name in names:
            where, data = files[name]
            if verify:
                verify_cifar10_batch(where, data)
            images, labels = read_cifar10_batch(where, data)
            parts[part][0].append(images)
            parts[part][1].append(labels)
    (x_train, y_train), (x_test, y_test) = (
        (np.concatenate(images), np.concatenate(labels)) for images, labels in parts.values()
    )
    return ImageSplit("cifar10", x_train, y_train, x_test, y_test, 255.0)


def prepare_cifar10(
    folder: str | Path,
    *,
    policy: str,
    fetch_into: str | Path | None,
    mirrors=CIFAR10_MIRRORS,
    timeout: float = 10.0,
) -> tuple[ImageSplit | None, str]:
    """CIFAR-10 under a data policy, as `prepare_mnist`: the six batch files or the binary
    archive in `folder`; fetched (the archive, MD5-verified) only into `fetch_into`."""
    folder = Path(folder)
    return _under_policy(
        "CIFAR-10",
        "cifar10",
        policy,
        folder,
        fetch_into,
        lacking=cifar10_lacks(folder),
        fetch=lambda: fetch_cifar10(folder, mirrors=mirrors, timeout=timeout),
        load=lambda: (load_cifar10(folder), f"CIFAR-10 binary batches in {folder}, checksums verified"),
        unavailable=CIFAR10Unavailable,
    )


def image_split_sizes(dataset: str, *, test_fraction: float = DIGITS_TEST_FRACTION) -> tuple[int, int]:
    """(training, test) images of a data set's whole split, known without reading it; digits as
    `load_digits_split` splits them (scikit-learn's test set holds ceil(test_fraction x images))."""
    if dataset == "digits":
        test = math.ceil(test_fraction * DIGITS_IMAGES)
        return DIGITS_IMAGES - test, test
    if dataset == "mnist":
        return MNIST_IMAGES["train"], MNIST_IMAGES["test"]
    if dataset == "cifar10":
        return tuple(len(CIFAR10_FILES[part]) * CIFAR10_RECORDS_PER_FILE for part in ("train", "test"))
    raise ValueError(f"unknown image data set {dataset!r}; choose one of digits, mnist, cifar10")


def load_digits_split(*, test_fraction: float = DIGITS_TEST_FRACTION, split_seed: int = 0) -> ImageSplit:
    """scikit-learn's 8x8 digits (values 0..16), split stratified by class with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images, labels = digits.images.astype(np.uint8), digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=split_seed, stratify=labels
    )
    return ImageSplit("digits", x_train, y_train, x_test, y_test, 16.0)


def channel_statistics(images: np.ndarray, pixel_max: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of unsigned-integer (N, H, W[, C]) images scaled
    to [0, 1], exact (from each channel's histogram, in float64)."""
    if images.dtype.kind != "u":
        raise ValueError(f"pixel statistics need unsigned-integer images, got {images.dtype}")
    channels = images if images.ndim == 4 else images[..., None]
    means, stds = [], []
    for channel in range(channels.shape[-1]):
        counts = np.bincount(channels[..., channel].ravel()).astype(np.float64)
        values = np.arange(len(counts)) / pixel_max
        mean = counts @ values / counts.sum()
        means.append(float(mean))
        stds.append(float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum())))
    return tuple(means), tuple(stds)


def pixel_statistics(split: ImageSplit) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of the training pixels (scaled to [0, 1]): the
    fixed values of MNIST and digits (`PIXEL_STATISTICS`), computed from x_train for the others."""
    if split.name in PIXEL_STATISTICS:
        mean, std = PIXEL_STATISTICS[split.name]
        return (mean,), (std,)
    return channel_statistics(split.x_train, split.pixel_max)


def normalise(
    images: np.ndarray, dataset: str, pixel_max: float, *, statistics: tuple | None = None
) -> np.ndarray:
    """float32 NHWC images, scaled to [0, 1] then standardised per channel with the training-set
    statistics: `statistics` (means, stds), or the fixed ones of `dataset` (MNIST, digits)."""
    if statistics is None:
        if dataset not in PIXEL_STATISTICS:
            raise ValueError(
                f"{dataset} has no fixed pixel statistics; pass statistics=pixel_statistics(split)"
            )
        statistics = PIXEL_STATISTICS[dataset]
    mean, std = (np.asarray(value, np.float32) for value in statistics)
    x = images.astype(np.float32)
    x = x[..., None] if x.ndim == 3 else x
    x /= np.float32(pixel_max)
    x -= mean
    x /= std
    return x


def random_crop(images: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad (N, H, W[, C]) raw images by `padding` pixels and crop each back at a random offset."""
    if padding == 0:
        return images
    n, h, w = images.shape[:3]
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding)) + ((0, 0),) * (images.ndim - 3))
    rows, cols = rng.integers(0, 2 * padding + 1, size=(2, n))
    row_index = rows[:, None, None] + np.arange(h)[None, :, None]
    col_index = cols[:, None, None] + np.arange(w)[None, None, :]
    return padded[np.arange(n)[:, None, None], row_index, col_index]


def random_flip(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror each of the (N, H, W[, C]) images left to right with probability 1/2."""
    flipped = rng.random(len(images)) < 0.5
    out = images.copy()
    out[flipped] = images[flipped][:, :, ::-1]
    return out
