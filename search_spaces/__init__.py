"""Registry of search spaces: ``get("nb201")``, ``available()``.

Built-in spaces are the modules of this package that register a class with ``@register``;
third-party packages add theirs through the ``evonas.search_spaces`` entry-point group (each
entry point names a ``SearchSpace`` subclass). A plug-in that fails to import is a one-line
warning and leaves every other space usable. Spaces registered from Python at run time
(``register`` / ``registered``) are known in this process; the Ray executor ships their
classes to its actors (``classes_to_ship``).
"""
from __future__ import annotations

import contextlib
import importlib
import pkgutil
import warnings
from importlib.metadata import entry_points
from typing import Iterator

from search_spaces.base import CellSketch, GenotypeError, SearchSpace

ENTRY_POINT_GROUP = "evonas.search_spaces"
#: Modules of this package that hold shared code, not a space.
_NOT_SPACES = frozenset({"base", "benchmark", "errors", "ops"})
_SPACES: dict[str, type[SearchSpace]] = {}
_BUILTIN: set[str] = set()
_FROM_PLUGINS: set[str] = set()
_loaded = False


class UnknownSpaceError(KeyError):
    """Raised for a space name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator adding a space under its ``name``."""
    if not getattr(cls, "name", ""):
        raise ValueError(f"{cls.__qualname__} has no name")
    _SPACES[cls.name] = cls
    return cls


@contextlib.contextmanager
def registered(cls: type[SearchSpace]) -> Iterator[type[SearchSpace]]:
    """Register ``cls`` for the duration of a ``with`` block (tests, notebooks); the old entry comes back."""
    _load_all()
    previous = _SPACES.get(cls.name)
    _SPACES[cls.name] = cls
    try:
        yield cls
    finally:
        if previous is None:
            _SPACES.pop(cls.name, None)
        else:
            _SPACES[cls.name] = previous


def _load_all() -> None:
    """Import every built-in space module (lazily: `import search_spaces` stays cheap), then the plug-ins."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_SPACES and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _BUILTIN.update(_SPACES)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in must not take every space down with it
            warnings.warn(f"search-space plug-in {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)
            continue
        if not (isinstance(cls, type) and issubclass(cls, SearchSpace)):
            warnings.warn(f"search-space plug-in {ep.name!r} ({ep.value}) is not a SearchSpace subclass; ignored",
                          stacklevel=2)
            continue
        name = getattr(cls, "name", "") or ep.name
        if name in _SPACES:
            continue  # a built-in (or an earlier plug-in) keeps its name
        if not getattr(cls, "name", ""):
            cls.name = name
        _SPACES[name] = cls
        _FROM_PLUGINS.add(name)


def reload_entry_points() -> None:
    """Look again for plug-in packages (after one was installed or removed at run time)."""
    global _loaded
    for name in _FROM_PLUGINS:
        _SPACES.pop(name, None)
    _FROM_PLUGINS.clear()
    _loaded = False
    _load_all()


def available() -> dict[str, type[SearchSpace]]:
    """All registered spaces by name."""
    _load_all()
    return dict(sorted(_SPACES.items()))


def origin(name: str) -> str:
    """``built-in``, ``plug-in`` (an entry point) or ``registered`` (from Python in this process)."""
    _load_all()
    return "built-in" if name in _BUILTIN else "plug-in" if name in _FROM_PLUGINS else "registered"


def classes_to_ship(name: str) -> dict[str, type[SearchSpace]]:
    """The class of ``name`` when another process could not find it by itself (registered from
    Python at run time, not built in and not an entry point); empty otherwise."""
    spaces = available()
    if name in spaces and origin(name) == "registered":
        return {name: spaces[name]}
    return {}


def get(name: str) -> SearchSpace:
    """An instance of the space called ``name``."""
    spaces = available()
    if name not in spaces:
        raise UnknownSpaceError(
            f"unknown search space {name!r}; choose one of: {', '.join(spaces)} "
            "(`evonas spaces` lists them; plug-ins register through the evonas.search_spaces entry point)"
        )
    return spaces[name]()


__all__ = [
    "CellSketch", "ENTRY_POINT_GROUP", "GenotypeError", "SearchSpace", "UnknownSpaceError", "available",
    "classes_to_ship", "get", "origin", "register", "registered", "reload_entry_points",
]
