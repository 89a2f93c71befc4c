"""The dataset schemes by name, and `SCHEME:PATH` (as `--dataset` and a task file's `source` give it) -> a source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...core.errors import UsageError
from ...core.registry import Registry
from .base import DataSource

# Scheme name -> its DataSource subclass, which builds a source with `from_spec(PATH, ...)`.
SCHEMES: Registry[type[DataSource]] = Registry("dataset scheme")


def list_schemes() -> list[str]:
    return SCHEMES.names()


def scheme_of(spec: str) -> tuple[type[DataSource], str]:
    """`SCHEME:PATH` -> the scheme's class and PATH."""
    scheme, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise UsageError(
            f"Dataset '{spec}' has no scheme: write SCHEME:PATH, with SCHEME one of {', '.join(list_schemes())}"
        )
    return SCHEMES.get(scheme), rest


def parse_dataset(spec: str, base: Path | None = None, **options: Any) -> DataSource:
    """`SCHEME:PATH` -> a source named `spec`; relative paths resolve against `base` (a task file's folder) if
    given. `options` are passed on to the scheme's `from_spec` (see DataSource.from_spec)."""
    reader, path = scheme_of(spec)
    return reader.from_spec(path, base=base, name=spec, **options)
