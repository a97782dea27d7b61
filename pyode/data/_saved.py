"""The save/load pair of the data classes: one verified .npz per data set."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar, Self

from .. import CorruptFile, load_arrays, save_arrays


class SavedAsArrays:
    """A frozen dataclass saved by `pyode.save_arrays`: the fields named in `ARRAYS` as arrays,
    the others, after `"kind": KIND`, as JSON metadata; `load` says "{path} {NOT_THIS} (it holds
    ...)" when a file is not one."""

    KIND: ClassVar[str]
    ARRAYS: ClassVar[tuple[str, ...]]
    NOT_THIS: ClassVar[str]

    def save(self, path: str | Path) -> None:
        """Write everything to one verified .npz file (`pyode.save_arrays`)."""
        arrays = {name: getattr(self, name) for name in self.ARRAYS}
        metadata = {name: getattr(self, name) for name in self._metadata_fields()}
        save_arrays(path, arrays, {"kind": self.KIND, **metadata})

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a file written by `save`, verified."""
        arrays, metadata = load_arrays(path)
        if metadata.get("kind") != cls.KIND or set(arrays) != set(cls.ARRAYS):
            raise CorruptFile(f"{path} {cls.NOT_THIS} (it holds {sorted(arrays)})")
        return cls(**{name: metadata[name] for name in cls._metadata_fields()}, **arrays)

    @classmethod
    def _metadata_fields(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls) if field.name not in cls.ARRAYS]
