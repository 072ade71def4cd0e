"""The score store of an ``evonas correlate`` folder: every score as it comes, keyed by what made it.

Layout::

    <out>/
      correlate.json   the manifest: cells, estimators, seeds, shard, each (estimator, seed)'s key
      scores.jsonl     one line per scored (cell, estimator, seed), appended by one ``HistoryWriter``
      scores.jsonl.gz  optional, read only: archived or imported lines (same format), read before scores.jsonl

A line is ``{"cell": position, "arch", "estimator", "seed", "key", "status", "score",
"seconds", "error"}``. ``key`` hashes every scoring setting that changes a score (estimator
settings incl. interval and normalisation, batch policy and size, seed, dataset, build
options) and the code fingerprint of the estimator, space and scorer, so a resume re-scores
exactly the (cell, estimator, seed) whose key changed. Lines reach the kernel one by one
(kill -9 loses none) and a torn last line is cut off when the folder is reopened.
"""
from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from evonas.errors import EvonasError
from evonas.execution import JobResult
from evonas.runs import SYNC_INTERVAL_S, HistoryWriter, read_jsonl, write_atomic
from evonas.scoring.fingerprint import digest
from evonas.scoring.score_key import score_key
from evonas.settings import ScoringSettings, load_json
from search_spaces.benchmark import Cell

STORE = "scores.jsonl"
#: Read-only compressed lines beside the store (imported or archived scores; never appended to).
ARCHIVE = "scores.jsonl.gz"
MANIFEST = "correlate.json"
#: The manifest fields a resume and a merge must find equal: what is being measured.
IDENTITY = ("space", "cells_digest", "estimators", "seeds")


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (0 <= I < N): this process scores the cells whose position p has p % N == I."""
    index, sep, count = text.partition("/")
    if not (sep and index.strip().isdigit() and count.strip().isdigit()):
        raise EvonasError(f"--shard {text!r} is not I/N (e.g. 0/4: the first of four shards)")
    i, n = int(index), int(count)
    if n < 1 or i >= n:
        raise EvonasError(f"--shard {text}: I must be in 0..N-1 (shards are numbered from 0), e.g. 0/{max(n, 1)}")
    return i, n


def shard_positions(n_cells: int, shard: tuple[int, int]) -> list[int]:
    """Cell positions of ``shard``: every N-th from I, so each shard gets a spread of the table."""
    index, count = shard
    return list(range(index, n_cells, count))


def cells_digest(cells: Sequence[Cell]) -> str:
    """Identity of the scored cells, in order (their accuracies included)."""
    return digest([[c.arch, c.truth] for c in cells])


@dataclass
class Manifest:
    """What a correlate folder measures (``IDENTITY``), its shard, and each run's key and settings."""

    data: dict[str, Any]

    @classmethod
    def read(cls, folder: Path) -> "Manifest":
        path = folder / MANIFEST
        if not path.is_file():
            raise EvonasError(f"{folder} has no {MANIFEST}; is it a folder made by `evonas correlate`?")
        return cls(load_json(path))

    @property
    def cells(self) -> list[Cell]:
        return [Cell(arch, float(truth)) for arch, truth in self.data["cells"]]

    @property
    def shard(self) -> tuple[int, int]:
        index, count = self.data["shard"]
        return int(index), int(count)

    def keys(self) -> dict[str, str]:
        """``"estimator@seed" -> key`` for every run."""
        return {label: run["key"] for label, run in self.data["runs"].items()}

    @property
    def params(self) -> list[float] | None:
        """Each cell's deployed-network parameters (millions) when the manifest keeps them."""
        params = self.data.get("params")
        return None if params is None or len(params) != len(self.data["cells"]) else [float(p) for p in params]

    @property
    def table_columns(self) -> dict[str, list[float]]:
        """``--table-columns``: each table column's value per cell (empty when none was asked for)."""
        return self.data.get("table_columns") or {}

    def check_same(self, expected: dict[str, Any], folder: Path, doing: str) -> None:
        """A one-line error naming the first ``IDENTITY`` field where this folder's manifest is not ``expected``."""
        for name in IDENTITY:
            found, wanted = self.data.get(name), expected.get(name)
            if found == wanted:
                continue
            if name == "cells_digest":
                raise EvonasError(f"cannot {doing}: {folder} holds other cells (different --truth/--sample/--seed/"
                                  "--archs-file/--truth-column); give the flags it was made with")
            raise EvonasError(f"cannot {doing}: {folder} was made with {name} {_show(found)}, not {_show(wanted)}; "
                              "give the same flags or another --out")

    def write(self, folder: Path) -> None:
        write_atomic(folder / MANIFEST, self.data)


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def identity(space: str, cells: Sequence[Cell], names: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """The ``IDENTITY`` fields of a correlate call."""
    return {"space": space, "cells_digest": cells_digest(cells), "estimators": list(names), "seeds": list(seeds)}


def run_label(name: str, seed: int) -> str:
    return f"{name}@{seed}"


def make_manifest(space: str, cells: Sequence[Cell], names: Sequence[str], seeds: Sequence[int],
                  shard: tuple[int, int], runs: dict[str, dict[str, Any]], record: dict[str, Any],
                  table_columns: dict[str, list[float]] | None = None,
                  params: Sequence[float] | None = None) -> Manifest:
    """A manifest; ``runs`` maps ``run_label`` to ``{"key", "settings"}``, ``record`` is the summary's settings,
    ``table_columns`` the ``--table-columns`` values per cell (read from the table, not scored), ``params``
    each cell's deployed-network parameters (millions; kept so ``--from`` need not rebuild 15,625 networks)."""
    data = {**identity(space, cells, names, seeds), "shard": list(shard), "cells": [[c.arch, c.truth] for c in cells],
            "runs": runs, "record": record}
    if table_columns:
        data["table_columns"] = table_columns
    if params is not None:
        data["params"] = list(params)
    return Manifest(data)


def folder_lines(folder: Path, repair: bool = False) -> list[dict[str, Any]]:
    """Every stored line of ``folder``: its archive (``scores.jsonl.gz``) first, then ``scores.jsonl``."""
    archived = folder / ARCHIVE
    lines = []
    if archived.is_file():
        with gzip.open(archived, "rt") as fh:
            lines = [json.loads(line) for line in fh if line.strip()]
    return lines + read_jsonl(folder / STORE, repair=repair)


class ScoreStore:
    """The scores of one folder (or, without a folder, of this call only): read back, then appended."""

    def __init__(self, folder: Path | None = None, lines: Iterable[dict[str, Any]] = ()) -> None:
        self.folder = folder
        self._found: dict[tuple[str, int], dict[str, Any]] = {}
        for line in lines:
            self._found.setdefault((line["key"], int(line["cell"])), line)
        self._writer: HistoryWriter | None = None

    @classmethod
    def open(cls, folder: Path, resume: bool) -> "ScoreStore":
        """The store of ``folder``: a new one, or with ``resume`` the one there (torn last line cut off)."""
        path = folder / STORE
        if not resume and ((folder / MANIFEST).exists() or path.exists() or (folder / ARCHIVE).exists()):
            raise EvonasError(f"{folder} already holds a correlate run; continue it with --resume "
                              "or pick another --out")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EvonasError(f"cannot create output folder {folder}: {exc.strerror}") from None
        return cls(folder, folder_lines(folder, repair=True))

    @classmethod
    def merged(cls, folders: Sequence[Path]) -> "ScoreStore":
        """The scores of several folders together, in memory (a cell scored twice counts once)."""
        return cls(None, (line for folder in folders for line in folder_lines(folder)))

    def get(self, key: str, cell: int) -> dict[str, Any] | None:
        return self._found.get((key, cell))

    def missing(self, key: str, positions: Iterable[int]) -> list[int]:
        return [p for p in positions if (key, p) not in self._found]

    def add(self, key: str, name: str, seed: int, arch: str, result: JobResult) -> None:
        """Keep one result, and append it to the folder's store before anything else acts on it."""
        score = result.score if result.ok and result.score is not None and math.isfinite(result.score) else None
        line = {"cell": result.job_id, "arch": arch, "estimator": name, "seed": seed, "key": key,
                "status": result.status, "score": score, "seconds": result.seconds, "error": result.error}
        self._found.setdefault((key, result.job_id), line)
        if self.folder is not None:
            if self._writer is None:
                self._writer = HistoryWriter(self.folder / STORE, SYNC_INTERVAL_S)
            self._writer.append(json.dumps(line, sort_keys=True) + "\n")

    def lines(self) -> list[dict[str, Any]]:
        return list(self._found.values())

    def write_all(self, folder: Path) -> None:
        """Write every line held to ``folder``'s store in one go (a merge's output)."""
        writer = HistoryWriter(folder / STORE, SYNC_INTERVAL_S)
        try:
            for line in sorted(self._found.values(), key=lambda ln: (ln["estimator"], ln["seed"], ln["cell"])):
                writer.append(json.dumps(line, sort_keys=True) + "\n")
        finally:
            writer.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
