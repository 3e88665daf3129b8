"""One small registry helper, reused for models, passes and runtimes."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from zoodeploy.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> item mapping where a duplicate name is an error and an unknown one suggests.

    `hint` tells how to list the names (e.g. "list them with `zoodeploy models list`"), for
    registries too long to print in an error; without one the error lists the known names.
    """

    def __init__(self, kind: str, *, hint: str | None = None):
        self.kind = kind
        self.hint = hint
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"duplicate {self.kind} name: {name!r}")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""
        return lambda item: self.add(name, item)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=3, cutoff=0.5)
            suggest = f"; did you mean {', '.join(close)}?" if close else ""
            known = self.hint or f"known: {', '.join(self._items)}"
            raise UnknownNameError(f"unknown {self.kind} {name!r}{suggest} ({known})") from None

    def names(self, include: str | Iterable[str] | None = None,
              exclude: str | Iterable[str] | None = None) -> list[str]:
        """Names in registration order, filtered by fnmatch patterns."""
        def patterns(p):
            return [p] if isinstance(p, str) else list(p or [])
        inc, exc = patterns(include), patterns(exclude)
        return [n for n in self._items
                if (not inc or any(fnmatch.fnmatch(n, p) for p in inc))
                and not any(fnmatch.fnmatch(n, p) for p in exc)]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
