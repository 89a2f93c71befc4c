"""Typed records to and from JSON: dataclasses all the way down, read back with every field's type checked.

A record class is a dataclass whose fields are JSON values (str, int, float, bool, None), str Enums, lists and
dicts of them (dict keys are strings), tuples, unions with None, and other record classes. `to_json` writes it
(fields that are None and default to None left out); `from_json` reads it back, and a field of the wrong type,
a missing field or an unknown one is a RunError that names the file and the field's path (`data.sizes.train`)."""

from __future__ import annotations

import dataclasses
import enum
import functools
import sys
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin

from .errors import RunError

T = TypeVar("T")


def to_json(record: Any) -> Any:
    """A record (or a list, dict, Enum or plain value holding records) as JSON data."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        out = {}
        for f in dataclasses.fields(record):
            value = getattr(record, f.name)
            if value is None and f.default is None:
                continue  # an optional section that is not set is left out
            out[f.name] = to_json(value)
        return out
    if isinstance(record, enum.Enum):
        return record.value
    if isinstance(record, dict):
        return {str(k): to_json(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [to_json(v) for v in record]
    return record


def from_json(cls: type[T], data: Any, where: str) -> T:
    """`data` read as a `cls` record; anything that does not fit is a RunError naming `where` and the field."""
    return _read(cls, data, where, "")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    module = sys.modules[cls.__module__]
    return typing.get_type_hints(cls, globalns=vars(module))


def _fail(where: str, path: str, problem: str) -> RunError:
    field = f" field '{path}'" if path else ""
    return RunError(f"{where}{field} {problem}; re-run what wrote it (or delete the file)")


def _describe(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _read(kind: Any, value: Any, where: str, path: str) -> Any:
    origin = get_origin(kind)
    if kind is Any:
        return value
    if origin is Union or (sys.version_info >= (3, 10) and origin is types.UnionType):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _read(option, value, where, path)
            except RunError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise _fail(where, path, f"is {_describe(value)}, which fits none of its types")
    if origin is typing.Literal:
        if value not in get_args(kind):
            raise _fail(where, path, f"is {value!r}, expected one of {', '.join(map(repr, get_args(kind)))}")
        return value
    if origin in (list, tuple) or kind in (list, tuple):
        if not isinstance(value, list):
            raise _fail(where, path, f"is {_describe(value)}, expected a list")
        args = get_args(kind)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise _fail(where, path, f"has {len(value)} items, expected {len(args)}")
            return tuple(_read(a, v, where, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_read(item, v, where, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or kind is tuple else items
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise _fail(where, path, f"is {_describe(value)}, expected an object")
        args = get_args(kind)
        item = args[1] if args else Any
        return {k: _read(item, v, where, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in kind)
            raise _fail(where, path, f"is {value!r}, expected one of {choices}") from None
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise _fail(where, path, f"is {_describe(value)}, expected an object")
        hints = _hints(kind)
        fields = {f.name: f for f in dataclasses.fields(kind) if f.init}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            name = f"{path}.{unknown[0]}" if path else unknown[0]
            raise _fail(where, name, "is not a field this clipprobe knows")
        values = {}
        for name, f in fields.items():
            sub = f"{path}.{name}" if path else name
            if name not in value:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise _fail(where, sub, "is missing")
                continue
            values[name] = _read(hints[name], value[name], where, sub)
        return kind(**values)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, path, f"is {_describe(value)}, expected a number")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, path, f"is {_describe(value)}, expected a whole number")
        return value
    if kind in (str, bool):
        if not isinstance(value, kind):
            raise _fail(where, path, f"is {_describe(value)}, expected {_describe(kind())}")
        return value
    if kind is type(None):
        if value is not None:
            raise _fail(where, path, f"is {_describe(value)}, expected null")
        return None
    raise TypeError(f"from_json cannot read the type {kind!r} ({where} {path})")  # a programming error
