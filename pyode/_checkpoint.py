"""Saving and restoring models and training state, atomically."""

import json
import os
from pathlib import Path
from typing import Any

import equinox as eqx


def save_tree(path: str | Path, tree: Any, metadata: dict | None = None) -> None:
    """Write the array leaves of `tree` (and optional JSON `metadata` beside it) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata is not None:
        _atomic_write(path.with_suffix(".json"), lambda f: f.write(json.dumps(metadata, indent=2).encode()))
    _atomic_write(path, lambda f: eqx.tree_serialise_leaves(f, tree))


def load_tree(path: str | Path, like: Any) -> Any:
    """Read leaves written by `save_tree` into a tree shaped like `like`."""
    return eqx.tree_deserialise_leaves(path, like)


def load_metadata(path: str | Path) -> dict:
    """The JSON metadata written beside `path` by `save_tree`."""
    return json.loads(Path(path).with_suffix(".json").read_text())


def _atomic_write(path: Path, write) -> None:
    temporary = path.with_name(path.name + ".partial")
    with open(temporary, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
