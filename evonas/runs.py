"""The run record: the one reader and writer of a search run's folder.

Layout::

    runs/<time>-<space>-<estimator>/
      config.json       resolved settings, scoring settings, estimator, library versions
      history.jsonl     one line per finished evaluation (the source of truth)
      checkpoint.json   evolution state every K evaluations and on Ctrl-C (atomic replace)
      best.json         best cell and top-k so far (atomic replace)
      tb/               TensorBoard (written by the search, see ``evonas.search.board``)
      train/            trainings of the run's best cells

History lines are appended, flushed and fsync'ed one by one, and the checkpoint records
how many lines it covers, so a resume rebuilds the exact state from the checkpoint plus
the lines written after it. A torn last line (killed mid-write) is cut off on resume.
Counts and the top cells are computed one way, by ``Tally``, for ``best.json``, ``evonas
show`` and training alike. No torch and no Ray here.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

from evonas.errors import EvonasError
from evonas.settings import ScoringSettings, SearchSettings, load_json, save_json

CONFIG = "config.json"
HISTORY = "history.jsonl"
CHECKPOINT = "checkpoint.json"
BEST = "best.json"
TENSORBOARD = "tb"
TRAIN = "train"
VERSIONED = ("torch", "deap", "ray", "numpy", "networkx", "evonas")


def library_versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """Versions of the libraries that shape a result, plus Python's."""
    versions = {"python": platform.python_version()}
    for name in (*VERSIONED, *extra):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def default_run_name(space: str, estimator: str) -> str:
    """``<UTC time>-<space>-<estimator>``: sorts by start time, says what ran."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{space}-{estimator}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON so readers see the old or the new file, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` that replaces ``path`` only if the block succeeds.

    The temporary file is created up front, so an unwritable destination fails before any
    work; on an error it is removed and ``path`` is left as it was.
    """
    if path.is_dir():
        raise EvonasError(f"{path} is a folder; give a file name to write")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.open("wb").close()
    except OSError as exc:
        raise EvonasError(f"cannot write {path} ({exc.strerror or exc}); choose another output path") from None
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _is_scored(record: dict[str, Any]) -> bool:
    score = record.get("score")
    return record.get("status") == "ok" and isinstance(score, (int, float)) and math.isfinite(score)


class Tally:
    """Counters and the best distinct cells of a run, fed one history record at a time.

    The top list keeps, per canonical key, the best score that key reached (the earliest
    on a tie) and ranks keys by it, earliest first on ties.
    """

    def __init__(self, higher_is_better: bool = True) -> None:
        self.higher_is_better = higher_is_better
        self.evaluations = self.failed = self.cache_hits = 0
        self._best: dict[str, tuple[float, int, dict[str, Any]]] = {}

    def add(self, record: dict[str, Any]) -> None:
        position = self.evaluations
        self.evaluations += 1
        self.cache_hits += bool(record.get("cache_hit"))
        if record.get("status") != "ok":
            self.failed += 1
        if not _is_scored(record):
            return
        score = float(record["score"]) if self.higher_is_better else -float(record["score"])
        held = self._best.get(record["key"])
        if held is None or score > held[0]:
            entry = {"id": record["id"], "genotype": record["genotype"], "key": record["key"], "score": record["score"]}
            self._best[record["key"]] = (score, position, entry)

    def extend(self, records: Iterable[dict[str, Any]]) -> "Tally":
        for record in records:
            self.add(record)
        return self

    def top(self, k: int) -> list[dict[str, Any]]:
        """The best ``k`` distinct cells as ``{id, genotype, key, score}``, best first."""
        ranked = sorted(self._best.values(), key=lambda held: (-held[0], held[1]))
        return [entry for _, _, entry in ranked[:k]]

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.evaluations if self.evaluations else 0.0

    def summary(self, budget: int | None, top_k: int, elapsed: float, complete: bool) -> dict[str, Any]:
        """What ``best.json`` holds (and ``evonas show`` prints)."""
        top = self.top(top_k)
        return {
            "complete": complete, "evaluations": self.evaluations, "budget": budget, "failed": self.failed,
            "cache_hits": self.cache_hits, "cache_hit_rate": self.cache_hit_rate, "elapsed": elapsed,
            "best": top[0] if top else None, "top": top,
        }


@dataclass(frozen=True)
class RecordedRun:
    """The settings a run recorded, parsed once for everyone who reads them."""

    search: SearchSettings
    scoring: ScoringSettings
    higher_is_better: bool
    raw: dict[str, Any]


class RunRecord:
    """Reads and writes the files of one run folder."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._history_fh: Any = None

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def best_path(self) -> Path:
        return self.path / BEST

    @property
    def tb_dir(self) -> Path:
        return self.path / TENSORBOARD

    @property
    def train_dir(self) -> Path:
        return self.path / TRAIN

    # ---- creation / opening -------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike) -> "RunRecord":
        """A new run folder; refuses one that already holds a run (resume that instead)."""
        record = cls(path)
        if record.config_path.exists():
            raise EvonasError(f"{record.path} already holds a run; continue it with --resume {record.path} "
                              "or pick another --run-dir")
        try:
            record.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EvonasError(f"cannot create run folder {record.path}: {exc.strerror}") from None
        return record

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunRecord":
        """An existing run folder (EvonasError if it is none)."""
        record = cls(path)
        if not record.path.is_dir():
            raise EvonasError(f"run folder {record.path} does not exist")
        if not record.config_path.is_file():
            raise EvonasError(f"{record.path} has no {CONFIG}; is it a run folder made by `evonas search`?")
        return record

    # ---- config -------------------------------------------------------------------
    def write_config(self, search: SearchSettings, scoring: ScoringSettings, estimator: dict[str, Any],
                     fingerprint: str) -> None:
        """``config.json``: everything needed to resume, reproduce and read the run."""
        save_json(self.config_path, {
            "search": search.to_dict(),
            "scoring": scoring.to_dict(),
            "estimator": estimator,
            "cache_fingerprint": fingerprint,
            "versions": library_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })

    def read_config(self) -> dict[str, Any]:
        return load_json(self.config_path)

    def settings(self) -> RecordedRun:
        """The recorded settings, parsed (a one-line EvonasError for a config that is not a search's)."""
        raw = self.read_config()
        try:
            search = SearchSettings.from_dict(raw["search"])
            scoring = ScoringSettings.from_dict(raw["scoring"])
        except (KeyError, TypeError) as exc:
            raise EvonasError(f"{self.config_path} is not an evonas search config ({exc}); "
                              f"is {self.path} a run made by `evonas search`?") from None
        return RecordedRun(search, scoring, bool(raw.get("estimator", {}).get("higher_is_better", True)), raw)

    # ---- history ------------------------------------------------------------------
    def append_history(self, record: dict[str, Any]) -> None:
        """Append one evaluation durably (flush + fsync) before anything acts on it."""
        if self._history_fh is None:
            self._history_fh = open(self.history_path, "a")
        self._history_fh.write(json.dumps(record, sort_keys=True) + "\n")
        self._history_fh.flush()
        os.fsync(self._history_fh.fileno())

    def read_history(self, repair: bool = False) -> list[dict[str, Any]]:
        """All complete history lines; with ``repair`` a torn last line is cut off the file."""
        if not self.history_path.exists():
            return []
        raw = self.history_path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]
        if repair and len(complete) != len(raw):
            with open(self.history_path, "r+b") as fh:
                fh.truncate(len(complete))
                os.fsync(fh.fileno())
        records = []
        for number, line in enumerate(complete.decode().splitlines(), 1):
            try:
                records.append(json.loads(line))
            except ValueError:
                raise EvonasError(f"{self.history_path} line {number} is not JSON; the history is corrupt") from None
        return records

    def tally(self, higher_is_better: bool | None = None) -> Tally:
        """Counters and top cells of the whole history as it stands."""
        if higher_is_better is None:
            higher_is_better = self.settings().higher_is_better
        return Tally(higher_is_better).extend(self.read_history())

    def close(self) -> None:
        if self._history_fh is not None:
            self._history_fh.close()
            self._history_fh = None

    # ---- checkpoint and best ------------------------------------------------------
    def write_checkpoint(self, state: dict[str, Any]) -> None:
        write_atomic(self.checkpoint_path, state)

    def read_checkpoint(self) -> dict[str, Any]:
        """The checkpoint, or a one-line EvonasError saying it cannot be used."""
        try:
            data = json.loads(self.checkpoint_path.read_text())
        except FileNotFoundError:
            raise EvonasError(f"{self.checkpoint_path} is missing; this run cannot be resumed") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise EvonasError(f"checkpoint {self.checkpoint_path} is unreadable ({exc}); "
                              "the run cannot be resumed, start a new one") from None
        if not isinstance(data, dict) or not {"evaluations", "evolution", "pending", "next_id"} <= data.keys():
            raise EvonasError(f"checkpoint {self.checkpoint_path} is not an evonas search checkpoint")
        return data

    def write_best(self, data: dict[str, Any]) -> None:
        write_atomic(self.best_path, data)

    def read_best(self) -> dict[str, Any] | None:
        return load_json(self.best_path) if self.best_path.exists() else None

    # ---- reading a run back ---------------------------------------------------------
    def summary(self, top_k: int | None = None) -> dict[str, Any]:
        """Everything ``evonas show`` prints about a run, finished or killed, read from its files."""
        recorded = self.settings()
        search = recorded.search
        history = self.read_history()
        tally = Tally(recorded.higher_is_better).extend(history)
        elapsed = history[-1].get("t", 0.0) if history else 0.0
        best_file = self.read_best() or {}
        done = tally.evaluations
        return {
            **tally.summary(search.budget, top_k or search.top_k, elapsed,
                            complete=bool(best_file.get("complete")) and (search.budget is None or done >= search.budget)),
            "run_dir": str(self.path), "config": recorded.raw, "time_limit": search.time_limit,
            "rate": done / elapsed if elapsed > 0 else 0.0,
        }
