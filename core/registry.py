"""One registry idiom for pruners, defenses and attacks (Opacus' `register_*` / `create_*`, LeakPro's dict).

An entry is an object (usually a class) with a `name`. Its own module registers it with one line, and
callers look it up by name; no caller branches on a name. Unknown names are a `UserError` listing the
valid ones, so every step script reports them the same way.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from core.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, in registration order (the order tables and `all` use)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        """Add `entry` under `entry.name`; returns it, so it also works as a class decorator."""
        name = getattr(entry, "name", "")
        if not name:
            raise ValueError(f"a {self.kind} needs a non-empty `name` to be registered")
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} '{name}'", f"valid: {', '.join(self._entries)}")
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    @contextmanager
    def registered(self, entry: T) -> Iterator[T]:
        """Register `entry` for the duration of a block (tests, notebooks), then remove it again."""
        self.register(entry)
        try:
            yield entry
        finally:
            del self._entries[entry.name]
