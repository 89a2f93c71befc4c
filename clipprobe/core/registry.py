"""A small named registry, one per pluggable kind (tasks, caption policies, extractors)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import UsageError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to entries; an unknown name raises an error that suggests the close names and lists them all."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None, *, replace: bool = False):
        """Register `entry` under `name`; without `entry`, return a decorator."""
        if entry is None:

            def decorator(obj: T) -> T:
                self.register(name, obj, replace=replace)
                return obj

            return decorator
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T:
        return self._entries.pop(name)

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names in order, optionally filtered by a shell-style wildcard."""
        names = sorted(self._entries)
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            names = self.names()
            raise UsageError(
                f"Unknown {self.kind} '{name}'. {did_you_mean(name, names)}Available: {', '.join(names)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]
