"""Registry of search strategies: the names ``--algorithm`` takes.

Built-in strategies register themselves with ``@register`` in their modules (``evolution``,
``nsga2``, ``random_search``); third-party packages add theirs through the ``evonas.strategies``
entry-point group (each entry point names a ``Strategy`` subclass), with no edit of evonas. A
plug-in that fails to import is a one-line warning and leaves every other strategy usable.
Strategies run in the driver's process only, so one registered from Python at run time
(``register`` / ``registered``) works with every executor.
"""
from __future__ import annotations

import contextlib
import importlib
import warnings
from importlib.metadata import entry_points
from typing import Iterator

from evonas.errors import EvonasError
from evonas.searching.strategy import Strategy, StrategyContext

ENTRY_POINT_GROUP = "evonas.strategies"
_BUILTIN_MODULES = ("evonas.searching.evolution", "evonas.searching.nsga2", "evonas.searching.random_search")
_REGISTRY: dict[str, type[Strategy]] = {}
_BUILTIN: set[str] = set()
_FROM_PLUGINS: set[str] = set()
_loaded = False
_NUMBERS = {1: "one", 2: "two", 3: "three"}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator adding a strategy under its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"{cls!r} is not a Strategy subclass")
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


@contextlib.contextmanager
def registered(cls: type[Strategy]) -> Iterator[type[Strategy]]:
    """Register ``cls`` for the duration of a ``with`` block (tests, notebooks); the old entry comes back."""
    _load_all()
    previous = _REGISTRY.get(cls.name)
    register(cls)
    try:
        yield cls
    finally:
        if previous is None:
            _REGISTRY.pop(cls.name, None)
        else:
            _REGISTRY[cls.name] = previous


def _load_all() -> None:
    """Import the built-in strategies, then the entry points (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    _BUILTIN.update(_REGISTRY)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in must not take every strategy down with it
            warnings.warn(f"strategy plug-in {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            warnings.warn(f"strategy plug-in {ep.name!r} ({ep.value}) is not a Strategy subclass; ignored",
                          stacklevel=2)
            continue
        name = cls.name or ep.name
        if name in _REGISTRY:
            continue  # a built-in (or an earlier plug-in) keeps its name
        if not cls.name:
            cls.name = name
        _REGISTRY[name] = cls
        _FROM_PLUGINS.add(name)


def reload_entry_points() -> None:
    """Look again for plug-in packages (after one was installed or removed at run time)."""
    global _loaded
    for name in _FROM_PLUGINS:
        _REGISTRY.pop(name, None)
    _FROM_PLUGINS.clear()
    _loaded = False
    _load_all()


def available() -> dict[str, type[Strategy]]:
    """All registered strategies by name."""
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def origin(name: str) -> str:
    """``built-in``, ``plug-in`` (an entry point) or ``registered`` (from Python in this process)."""
    _load_all()
    return "built-in" if name in _BUILTIN else "plug-in" if name in _FROM_PLUGINS else "registered"


def get(name: str) -> type[Strategy]:
    """The strategy class called ``name`` (a one-line EvonasError naming the choices if none is)."""
    strategies = available()
    if name not in strategies:
        raise EvonasError(f"--algorithm must be one of {', '.join(strategies)} (plug-ins register through the "
                          f"{ENTRY_POINT_GROUP} entry point), not {name!r}")
    return strategies[name]


def check_objectives(name: str, objectives: int) -> None:
    """A one-line EvonasError unless strategy ``name`` takes ``objectives`` objectives."""
    cls = get(name)
    if cls.accepts(objectives):
        return
    if objectives < cls.min_objectives:
        wanted = _NUMBERS.get(cls.min_objectives, str(cls.min_objectives))
        raise EvonasError(f"--algorithm {name} needs at least {wanted} --objectives, like sweet,params")
    fitting = [other for other, c in available().items() if c.accepts(objectives)]
    most = _NUMBERS.get(cls.max_objectives or 0, str(cls.max_objectives))
    instead = f"need --algorithm {' or '.join(fitting)}" if fitting else "need a strategy that takes them"
    raise EvonasError(f"several --objectives {instead} ({name} optimises {most})")


def create(name: str, context: StrategyContext) -> Strategy:
    """An instance of strategy ``name`` for ``context``."""
    return get(name).from_context(context)


__all__ = ["ENTRY_POINT_GROUP", "available", "check_objectives", "create", "get", "origin", "register",
           "registered", "reload_entry_points"]
