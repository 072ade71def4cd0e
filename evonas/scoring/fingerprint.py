"""Short stable hashes: of settings (cache keys, run fingerprints) and of the code that computes a result.

A cached result is only right while the code that computed it is unchanged, so cache keys
carry ``code_fingerprint`` of the estimator and space classes involved: the source of their
modules and of every module of the same top-level package those import (``estimators.sweet``
pulls in ``estimators._shared_pass``, ``estimators._torch_utils``, ...), plugins included.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from evonas.settings import ScoringSettings

DIGITS = 16
#: ScoringSettings fields that do not change a score (the data folder only says where the same data lives).
_NOT_SCORE_AFFECTING = ("data_dir",)


def digest(data: Any) -> str:
    """A short hash of JSON-able ``data`` (key order does not matter)."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGITS]


def scoring_fingerprint(config: ScoringSettings) -> str:
    """A short stable hash of everything in ``config`` that changes a score."""
    return digest({k: v for k, v in config.to_dict().items() if k not in _NOT_SCORE_AFFECTING})


def _module_of(value: Any) -> ModuleType | None:
    if isinstance(value, ModuleType):
        return value
    name = getattr(value, "__module__", None)
    return sys.modules.get(name) if isinstance(name, str) else None


def _modules(objects: tuple[Any, ...]) -> dict[str, ModuleType]:
    """The modules defining ``objects``, and those they import from their own top-level package."""
    found: dict[str, ModuleType] = {}
    todo = [m for m in map(_module_of, objects) if m is not None]
    while todo:
        module = todo.pop()
        if module.__name__ in found:
            continue
        found[module.__name__] = module
        package = module.__name__.partition(".")[0]
        for value in list(vars(module).values()):
            dep = _module_of(value)
            if dep is not None and dep.__name__.partition(".")[0] == package and dep.__name__ not in found:
                todo.append(dep)
    return found


def code_fingerprint(*objects: Any) -> str:
    """A short hash of the source files behind ``objects`` (classes, functions or modules).

    A module without a readable source file (compiled, zipped) counts by its name and version.
    """
    h = hashlib.sha256()
    for name, module in sorted(_modules(objects).items()):
        h.update(name.encode() + b"\0")
        try:
            h.update(Path(module.__file__ or "").read_bytes())
        except (OSError, TypeError, ValueError):
            h.update(str(getattr(module, "__version__", "")).encode())
    return h.hexdigest()[:DIGITS]
