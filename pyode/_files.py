"""Files that are never half-written and never read corrupted: atomic writes and verified arrays.

Every file pyode writes goes through `atomic_write` (a temporary name, fsync, rename), so an
interrupted write leaves the old file or none. Arrays that later steps depend on (data,
models, training checkpoints) are saved with `save_arrays`: one .npz holding the arrays and
their JSON metadata, sealed by the SHA-256 of its bytes, which `load_arrays` checks first.
"""

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._errors import MissingFile, UserError

FORMAT = "pyode-arrays/2"
_MANIFEST = "__manifest__"
_SEAL = 64
"""Length of the seal: the hex SHA-256 that ends the file, as the zip archive's comment."""


class CorruptFile(UserError, ValueError):
    """A file is missing parts, truncated or altered; the message names it."""


def atomic_write(path: str | Path, content: bytes | str | Callable[[IO[bytes]], None]) -> None:
    """Write `content` (bytes, text, or a function writing to a binary file) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(temporary, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: str | Path, value: Any) -> None:
    """Write `value` as indented JSON, atomically."""
    atomic_write(path, json.dumps(value, indent=2, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON value in `path`; a file that is not JSON is a CorruptFile naming it and the line."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CorruptFile(f"{path} is not valid JSON (line {error.lineno}: {error.msg})") from None


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], metadata: dict) -> None:
    """Write `arrays` and JSON `metadata` to one .npz, atomically, sealed with its SHA-256.

    The file is an ordinary .npz (`numpy.load` reads it); its archive comment holds the
    SHA-256 of every byte before it, so that `load_arrays` notices any change to the file.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, value in {
            **arrays,
            _MANIFEST: json.dumps({"format": FORMAT, "metadata": metadata}, default=_jsonable),
        }.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asarray(value), allow_pickle=False)
        archive.comment = b"0" * _SEAL
    sealed = buffer.getvalue()
    atomic_write(path, sealed[:-_SEAL] + hashlib.sha256(sealed[:-_SEAL]).hexdigest().encode())


def verify_seal(path: str | Path) -> bytes:
    """The bytes of a file written by `save_arrays`, its seal checked (CorruptFile naming it if not)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"{path} does not exist")
    data = path.read_bytes()
    if len(data) <= _SEAL or hashlib.sha256(data[:-_SEAL]).hexdigest().encode() != data[-_SEAL:]:
        raise CorruptFile(
            f"{path} is truncated, altered or not a pyode array file (its checksum does not match)"
        )
    return data


def load_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and metadata written by `save_arrays`, verified; CorruptFile naming the file if not."""
    path = Path(path)
    data = verify_seal(path)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            manifest = json.loads(str(stored[_MANIFEST]))
            arrays = {name: stored[name] for name in stored.files if name != _MANIFEST}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise CorruptFile(f"{path} cannot be read ({type(error).__name__}: {error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptFile(f"{path} is not a pyode array file (its manifest is not of format {FORMAT})")
    return arrays, manifest["metadata"]


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
