"""evonas: evolutionary NAS with pluggable zero-cost estimators.

The Python API (``evonas.search``, ``evonas.Run``, ``evonas.train``, ``evonas.correlate``,
``evonas.build``, ``evonas.export``, ``evonas.draw``, ``evonas.report``) lives in
``evonas.api``; it is loaded on first use, so ``import evonas`` and the CLI's start stay cheap.
"""
from __future__ import annotations

from typing import Any

from evonas.errors import EvonasError

from evonas.version import __version__
_API = ("AskTell", "Cell", "InputError", "ModelScore", "Run", "build", "calibrate", "compare", "composite_normalisation",
        "correlate", "draw", "export", "refine", "report", "resume", "score", "search", "train", "trust", "ask_tell")


def __getattr__(name: str) -> Any:
    if name in _API:
        from evonas import api  # torch, Ray and the workflows: paid on first use only

        return getattr(api, name)
    raise AttributeError(f"module 'evonas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = ["EvonasError", "__version__", *_API]
