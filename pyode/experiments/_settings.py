"""Typed settings: frozen dataclasses with their defaults, overlaid by plain dicts (config, files).

Every experiment's settings are a `Section` whose fields are values or nested sections.
`Section.overlay(changes)` returns a copy with `changes` applied, checking each key and
value: an unknown key, a wrong type or a value outside its allowed set or range is a
`SettingsError` naming the key path, the value and what is allowed. Field metadata carries
the constraints: `choices` (names from the package's registries), `minimum`, `above`
(exclusive minimum), `maximum`.
"""

import contextlib
import copy
import dataclasses
import functools
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Self

from .. import UserError


class SettingsError(UserError, ValueError):
    """A setting is unknown or has a value that is not allowed; the message names it."""


def option(default: Any, *, choices: Iterable[str] | None = None, **bounds) -> Any:
    """A field with a default and constraints (`choices`, `minimum`, `above`, `maximum`)."""
    metadata = dict(bounds)
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if isinstance(default, (dict, list, Section)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Section:
    """A group of typed settings; subclasses are frozen dataclasses whose fields all have defaults."""

    def overlay(self, changes: Mapping[str, Any] | None, where: str = "settings") -> Self:
        """A copy with `changes` applied (nested sections overlaid, values replaced), checked."""
        if changes is None:
            return self
        if not isinstance(changes, Mapping):
            raise SettingsError(f"{where} must be a mapping of keys to values, got {_show(changes)}")
        fields = {f.name: f for f in dataclasses.fields(self)}
        updates = {}
        for key, value in changes.items():
            path = f"{where}.{key}"
            if key not in fields:
                raise SettingsError(f"unknown key {path}; {where} takes {', '.join(sorted(fields))}")
            current = getattr(self, key)
            if isinstance(current, Section):
                updates[key] = current.overlay(value, path)
            else:
                updates[key] = _checked(value, _annotation(type(self), key), fields[key].metadata, path)
        return self.adjusted(updates).validate(where)

    def adjusted(self, updates: dict[str, Any]) -> Self:
        """The copy `overlay` returns; sections whose keys depend on each other override this."""
        return dataclasses.replace(self, **updates)

    def validate(self, where: str) -> Self:
        """Checks across keys (override in sections that have any); returns self."""
        return self

    def part(self, base: type["Section"]) -> "Section":
        """The fields this section inherits from `base`, as a `base` (e.g. the data stage's settings)."""
        return base(**{f.name: getattr(self, f.name) for f in dataclasses.fields(base)})

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists (JSON-able), the form every run records."""
        return {
            f.name: (value.to_dict() if isinstance(value, Section) else _plain(value))
            for f in dataclasses.fields(self)
            for value in [getattr(self, f.name)]
        }


@contextlib.contextmanager
def reported_at(where: str):
    """Turn a ValueError or TypeError raised inside the block into a SettingsError naming `where`."""
    try:
        yield
    except (ValueError, TypeError) as error:
        raise SettingsError(f"{where}: {error}") from None


def data_part(changes: Mapping[str, Any], settings: type[Section], data: type[Section]) -> dict:
    """`changes` without the keys only a run's `settings` have, so that a run's file serves its data stage."""
    run_only = {f.name for f in dataclasses.fields(settings)} - {f.name for f in dataclasses.fields(data)}
    return {key: value for key, value in changes.items() if key not in run_only}


def section_keys(
    section: Any, where: str, *, required: Iterable[str] = (), optional: Iterable[str] = ()
) -> Mapping:
    """`section`, checked to be a mapping that has every `required` key and no key but those and `optional`.

    The structure of a config section; the values are checked by the settings they feed.
    """
    if not isinstance(section, Mapping):
        raise SettingsError(f"{where} must be a mapping of keys to values, got {_show(section)}")
    required, allowed = tuple(required), (*required, *optional)
    missing = [key for key in required if key not in section]
    if missing:
        raise SettingsError(
            f"{where} needs {', '.join(missing)}; it has {', '.join(map(str, section)) or 'nothing'}"
        )
    unknown = sorted(map(str, set(section) - set(allowed)))
    if unknown:
        raise SettingsError(f"unknown key {where}.{unknown[0]}; {where} takes {', '.join(sorted(allowed))}")
    return section


def changes_at(section: Mapping, key: str, where: str) -> Mapping:
    """`section[key]` (empty when absent), checked to be a mapping: changes to a group of settings."""
    changes = section.get(key, {})
    if not isinstance(changes, Mapping):
        raise SettingsError(f"{where}.{key} must be a mapping of keys to values, got {_show(changes)}")
    return changes


def listed(section: Mapping, key: str, where: str, *, empty: bool = False) -> list:
    """`section[key]`, checked to be a list without repeats, non-empty unless `empty` (each item is
    checked where it is used)."""
    items = section.get(key)
    if not isinstance(items, list) or not (items or empty):
        raise SettingsError(
            f"{where}.{key} must be a {'' if empty else 'non-empty '}list, got {_show(items)}"
        )
    repeated = sorted({str(item) for item in items if items.count(item) > 1})
    if repeated:
        raise SettingsError(f"{where}.{key}: {', '.join(repeated)} appear(s) more than once")
    return items


def named_entries(
    section: Mapping, key: str, where: str, *, keys: Iterable[str] | None = None
) -> list[Mapping]:
    """`section[key]`: a non-empty list of mappings, each with its own `name` and, when `keys` is given,
    no other key than those (entries whose other keys are options checked downstream pass None)."""
    path = f"{where}.{key}"
    entries = section.get(key)
    if not isinstance(entries, list) or not entries:
        raise SettingsError(
            f"{path} must be a non-empty list of entries, each with a name, got {_show(entries)}"
        )
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise SettingsError(f"{path}[{index}] must be a mapping with a name, got {_show(entry)}")
        if keys is not None:
            section_keys(entry, f"{path}[{entry['name']}]", required=("name",), optional=keys)
    names = [entry["name"] for entry in entries]
    repeated = sorted({str(name) for name in names if names.count(name) > 1})
    if repeated:
        raise SettingsError(f"{path}: the name(s) {', '.join(repeated)} appear more than once")
    return entries


def _annotation(cls: type, key: str):
    return _type_hints(cls)[key]


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """`typing.get_type_hints(cls)`, computed once per class (planning overlays hundreds of sections)."""
    return typing.get_type_hints(cls)


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _show(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def _checked(value, annotation, metadata: Mapping, path: str):
    """`value` converted to `annotation` (ints widen to floats, lists to tuples), or a SettingsError."""
    value = _typed(value, annotation, path)
    if value is None:
        return value
    choices = metadata.get("choices")
    if choices is not None and value not in choices:
        raise SettingsError(f"{path} is {value!r}; choose one of {', '.join(map(str, choices))}")
    if "minimum" in metadata and value < metadata["minimum"]:
        raise SettingsError(f"{path} is {value!r}; it must be at least {metadata['minimum']}")
    if "above" in metadata and not value > metadata["above"]:
        raise SettingsError(f"{path} is {value!r}; it must be greater than {metadata['above']}")
    if "maximum" in metadata and value > metadata["maximum"]:
        raise SettingsError(f"{path} is {value!r}; it must be at most {metadata['maximum']}")
    return value


def _typed(value, annotation, path: str):
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        errors = []
        for option_type in (a for a in arguments if a is not type(None)):
            try:
                return _typed(value, option_type, path)
            except SettingsError as error:
                errors.append(error)
        allowed = " or ".join(_name(a) for a in arguments)
        raise SettingsError(f"{path} is {_show(value)}; expected {allowed}") from None
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{path} is {_show(value)}; expected a list")
        item = arguments[0] if arguments else Any
        return tuple(_typed(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{path} is {_show(value)}; expected a list")
        return list(value)
    if origin is dict or annotation is dict:
        if not isinstance(value, Mapping):
            raise SettingsError(f"{path} is {_show(value)}; expected a mapping")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{path} is {_show(value)}; expected true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{path} is {_show(value)}; expected a whole number")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{path} is {_show(value)}; expected a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise SettingsError(f"{path} is {_show(value)}; expected a string")
        return value
    raise TypeError(f"{path}: settings of type {annotation} are not supported")


def _name(annotation) -> str:
    if annotation is type(None):
        return "null"
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )
