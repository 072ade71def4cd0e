"""Registry of zero-cost estimators.

Built-in estimators register themselves with ``@register``; third-party packages add
theirs through the ``evonas.estimators`` entry-point group (each entry point names an
``Estimator`` subclass), without touching this repository.
"""
from __future__ import annotations

import contextlib
import importlib
import pkgutil
import warnings
from importlib.metadata import entry_points
from typing import Any, Iterator

from estimators.base import Batch, Estimator, EstimatorError, EstimatorResult

ENTRY_POINT_GROUP = "evonas.estimators"
_REGISTRY: dict[str, type[Estimator]] = {}
_FROM_PLUGINS: set[str] = set()
_loaded = False


class UnknownEstimatorError(KeyError):
    """Raised for an estimator name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(cls: type[Estimator]) -> type[Estimator]:
    """Class decorator adding an estimator under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


@contextlib.contextmanager
def registered(cls: type[Estimator]) -> Iterator[type[Estimator]]:
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
    """Import every built-in module of this package, then the entry points (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in pkgutil.iter_modules(__path__):
        if info.name not in {"base"} and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not take every estimator down with it
            warnings.warn(f"estimator plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)
            continue
        name = getattr(cls, "name", "") or ep.name
        if isinstance(cls, type) and issubclass(cls, Estimator) and name not in _REGISTRY:
            _REGISTRY[name] = cls
            _FROM_PLUGINS.add(name)


def reload_entry_points() -> None:
    """Look again for plugin packages (after one was installed or removed at run time)."""
    global _loaded
    for name in _FROM_PLUGINS:
        _REGISTRY.pop(name, None)
    _FROM_PLUGINS.clear()
    _loaded = False
    _load_all()


def available() -> dict[str, type[Estimator]]:
    """All registered estimators by name."""
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get(name: str, **settings: Any) -> Estimator:
    """An estimator instance; ``settings`` go to its constructor."""
    registry = available()
    if name not in registry:
        raise UnknownEstimatorError(
            f"unknown estimator {name!r}; choose one of: {', '.join(registry)} (see `evonas estimators`)"
        )
    return registry[name](**settings)


__all__ = [
    "Batch", "Estimator", "EstimatorError", "EstimatorResult", "UnknownEstimatorError",
    "available", "get", "register", "registered", "reload_entry_points", "ENTRY_POINT_GROUP",
]
