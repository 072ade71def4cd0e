"""Registry of search spaces: ``get("nb201")``, ``available()``."""
from __future__ import annotations

import contextlib
from typing import Iterator

from search_spaces.base import GenotypeError, SearchSpace

_SPACES: dict[str, type[SearchSpace]] = {}


class UnknownSpaceError(KeyError):
    """Raised for a space name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator adding a space under its ``name``."""
    _SPACES[cls.name] = cls
    return cls


@contextlib.contextmanager
def registered(cls: type[SearchSpace]) -> Iterator[type[SearchSpace]]:
    """Register ``cls`` for the duration of a ``with`` block (tests, notebooks); the old entry comes back."""
    _load_builtin()
    previous = _SPACES.get(cls.name)
    _SPACES[cls.name] = cls
    try:
        yield cls
    finally:
        if previous is None:
            _SPACES.pop(cls.name, None)
        else:
            _SPACES[cls.name] = previous


def _load_builtin() -> None:
    # Imported lazily so `import search_spaces` stays cheap and cycle-free.
    from search_spaces import darts, nb201  # noqa: F401


def available() -> dict[str, type[SearchSpace]]:
    """All registered spaces by name."""
    _load_builtin()
    return dict(sorted(_SPACES.items()))


def get(name: str) -> SearchSpace:
    """An instance of the space called ``name``."""
    spaces = available()
    if name not in spaces:
        raise UnknownSpaceError(
            f"unknown search space {name!r}; choose one of: {', '.join(spaces)}"
        )
    return spaces[name]()


__all__ = ["GenotypeError", "SearchSpace", "UnknownSpaceError", "available", "get", "register"]
