"""A JSON file of cache entries that several processes may update at once.

Every update is a read-modify-write under an exclusive ``flock`` on a sibling lock file, and
the new content replaces the old file atomically, so concurrent writers never drop each
other's entries and a reader never sees half a file (reads need no lock).
"""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from evonas.errors import EvonasError


def read_entries(path: Path) -> dict[str, Any]:
    """Every entry; empty when the file is absent, unreadable or corrupt (recompute rather than fail)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``<path>.lock`` for the block (other processes wait for it)."""
    with open(path.with_name(f"{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def add_entries(path: Path, entries: Mapping[str, Any]) -> None:
    """Add (or replace) ``entries``, keeping every other entry, even one another process just wrote."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with locked(path):
            data = read_entries(path)
            data.update(entries)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, path)
    except OSError as exc:
        raise EvonasError(f"cannot write the cache {path}: {exc}; set EVONAS_CACHE to a writable folder") from exc
