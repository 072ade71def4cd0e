"""The run record: the one reader and writer of a search run's folder.

Layout::

    runs/<time>-<space>-<estimator>/
      config.json       resolved settings, scoring settings, estimator, library versions
      history.jsonl     one line per finished evaluation (the source of truth)
      checkpoint.json   evolution state every K evaluations and on Ctrl-C (atomic replace)
      best.json         best cell and top-k so far (atomic replace)
      latency_table.json  the latency lookup table the search predicted with (latency costs only)
      front.png         the Pareto front (searches with cost objectives)
      tb/               TensorBoard (written by the search, see ``evonas.searching.board``)
      training/            trainings of the run's best cells

History lines reach the kernel one by one as they are appended (so killing the process loses
none) and are fsync'ed in groups (see ``HistoryWriter``); the checkpoint is written only after
a sync and records how many lines it covers, so a resume rebuilds the exact state from the
checkpoint plus the lines that survived after it. A torn last line (killed mid-write) is cut
off on resume.
Counts and the top cells are computed one way, by ``Tally``, for ``best.json``, ``evonas
show`` and training alike. No torch and no Ray here.
"""
from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import platform
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

from evonas.errors import EvonasError
from evonas.fronts import dominates
from evonas.settings import ScoringSettings, SearchSettings, load_json, save_json

CONFIG = "config.json"
HISTORY = "history.jsonl"
CHECKPOINT = "checkpoint.json"
BEST = "best.json"
TENSORBOARD = "tb"
TRAIN = "train"
LATENCY_TABLE = "latency_table.json"
FRONT_PLOT = "front.png"
#: Longest wait, in seconds, between a history line's append and its fsync (0: fsync every line).
SYNC_INTERVAL_S = 0.2
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
        fh.write(json.dumps(data, sort_keys=True))  # one C-encoded string: json.dump encodes in Python
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
    """Counters, the best distinct cells and (with cost objectives) the Pareto front of a run.

    The top list keeps, per canonical key, the best score that key reached (the earliest
    on a tie) and ranks keys by it, earliest first on ties. Infeasible children (over a
    constraint, never scored) are counted apart: they are no evaluations. The front holds the
    distinct scored cells that no other beats in the score and every cost of ``front_costs``.
    """

    def __init__(self, higher_is_better: bool = True, front_costs: tuple[str, ...] = ()) -> None:
        self.higher_is_better = higher_is_better
        self.front_costs = tuple(front_costs)
        self.evaluations = self.failed = self.cache_hits = self.infeasible = self.lines = 0
        self._best: dict[str, tuple[float, int, dict[str, Any]]] = {}
        self._front: dict[str, tuple[tuple[float, ...], dict[str, Any]]] = {}

    def add(self, record: dict[str, Any]) -> None:
        self.lines += 1
        if record.get("status") == "infeasible":
            self.infeasible += 1
            return
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
            if "costs" in record:
                entry["costs"] = record["costs"]
            self._best[record["key"]] = (score, position, entry)
            self._update_front(score, entry)

    def _update_front(self, score: float, entry: dict[str, Any]) -> None:
        """Insert a new (or newly improved) distinct cell into the front if nothing dominates it."""
        costs = entry.get("costs")
        if not self.front_costs or not isinstance(costs, dict) or not set(self.front_costs) <= costs.keys():
            return
        point = (-score, *(float(costs[name]) for name in self.front_costs))
        self._front.pop(entry["key"], None)
        if any(dominates(other, point) for other, _ in self._front.values()):
            return
        self._front = {k: held for k, held in self._front.items() if not dominates(point, held[0])}
        self._front[entry["key"]] = (point, entry)

    def extend(self, records: Iterable[dict[str, Any]]) -> "Tally":
        for record in records:
            self.add(record)
        return self

    def top(self, k: int) -> list[dict[str, Any]]:
        """The best ``k`` distinct cells as ``{id, genotype, key, score}``, best first."""
        ranked = sorted(self._best.values(), key=lambda held: (-held[0], held[1]))
        return [entry for _, _, entry in ranked[:k]]

    def cells(self) -> list[dict[str, Any]]:
        """Every distinct scored cell (its best record), in the order those records came."""
        return [entry for _, _, entry in sorted(self._best.values(), key=lambda held: held[1])]

    def front(self) -> list[dict[str, Any]]:
        """The Pareto front's cells (``{id, genotype, key, score, costs}``), cheapest first."""
        return [entry for _, entry in sorted(self._front.values(), key=lambda held: (held[0][1:], held[0][0]))]

    def front_points(self) -> list[tuple[float, ...]]:
        """The front as minimised objective vectors: (-score or score, *costs)."""
        return [point for point, _ in self._front.values()]

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.evaluations if self.evaluations else 0.0

    def summary(self, budget: int | None, top_k: int, elapsed: float, complete: bool) -> dict[str, Any]:
        """What ``best.json`` holds (and ``evonas show`` prints)."""
        top = self.top(top_k)
        summary = {
            "complete": complete, "evaluations": self.evaluations, "budget": budget, "failed": self.failed,
            "cache_hits": self.cache_hits, "cache_hit_rate": self.cache_hit_rate, "elapsed": elapsed,
            "best": top[0] if top else None, "top": top, "infeasible": self.infeasible,
        }
        if self.front_costs:
            summary["front"] = self.front()
            summary["front_objectives"] = list(self.front_costs)
        return summary


class HistoryWriter:
    """Appends history lines and fsyncs them in groups: one fsync per ``interval`` instead of per line.

    Each line is handed to the kernel with one ``write`` as it is appended, so killing this
    process (even with kill -9) loses none; only a machine crash can lose lines appended since
    the last fsync. A background thread fsyncs every ``interval`` seconds while lines are
    waiting, and ``sync()`` does it at once: the search calls it before every checkpoint, so a
    checkpoint never covers a line that is not on disk. Lines lost in a crash were never
    counted by a checkpoint, and a resume simply proposes and scores again.
    """

    def __init__(self, path: Path, interval: float = SYNC_INTERVAL_S) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.interval = interval
        self.written = self.durable = 0  # lines appended / lines known to be on disk
        self._lock = threading.Lock()  # one fsync at a time, and ``durable`` never runs ahead
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if interval > 0:
            self._thread = threading.Thread(target=self._sync_periodically, name="evonas-history-sync", daemon=True)
            self._thread.start()

    def append(self, line: str) -> None:
        data = memoryview(line.encode())
        while data:
            data = data[os.write(self._fd, data):]
        self.written += 1
        if self._thread is None:
            self.sync()

    def sync(self) -> None:
        """Make every line appended so far durable (one fsync for all of them)."""
        with self._lock:
            target = self.written
            if target > self.durable:
                os.fsync(self._fd)
                self.durable = target

    def _sync_periodically(self) -> None:
        while not self._stop.wait(self.interval):
            if self.written > self.durable:
                self.sync()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sync()
        os.close(self._fd)


def read_jsonl(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """The complete lines of a ``HistoryWriter`` file (none if it is absent); a torn last line
    (killed mid-write) is skipped, and with ``repair`` cut off the file so appends start clean."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    if repair and len(complete) != len(raw):
        with open(path, "r+b") as fh:
            fh.truncate(len(complete))
            os.fsync(fh.fileno())
    records = []
    for number, line in enumerate(complete.decode().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            raise EvonasError(f"{path} line {number} is not JSON; the file is corrupt") from None
    return records


#: A score folder's files (``evonas correlate``'s output): the appended store and, read before it, an
#: optional read-only archive of lines in the same format (imported or archived scores).
SCORE_STORE = "scores.jsonl"
SCORE_ARCHIVE = "scores.jsonl.gz"


def read_score_folder(folder: Path, repair: bool = False) -> list[dict[str, Any]]:
    """Every stored score line of ``folder``: its archive first, then its store (torn last line skipped)."""
    lines: list[dict[str, Any]] = []
    archived = folder / SCORE_ARCHIVE
    if archived.is_file():
        try:
            with gzip.open(archived, "rt") as fh:
                lines = [json.loads(line) for line in fh if line.strip()]
        except (OSError, EOFError, ValueError) as exc:
            raise EvonasError(f"{archived} is corrupt ({exc}); restore it or delete it to re-score") from None
    return lines + read_jsonl(folder / SCORE_STORE, repair=repair)


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
        self._history: HistoryWriter | None = None

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

    @property
    def latency_table_path(self) -> Path:
        return self.path / LATENCY_TABLE

    @property
    def front_plot_path(self) -> Path:
        return self.path / FRONT_PLOT

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
        """Append one evaluation before anything acts on it; it is on disk after the next ``sync``
        (at most ``SYNC_INTERVAL_S`` later), and survives a kill of this process at once."""
        if self._history is None:
            self._history = HistoryWriter(self.history_path, SYNC_INTERVAL_S)
        self._history.append(json.dumps(record, sort_keys=True) + "\n")

    def sync(self) -> None:
        """Put every appended history line on disk; call it before anything that counts them."""
        if self._history is not None:
            self._history.sync()

    def read_history(self, repair: bool = False) -> list[dict[str, Any]]:
        """All complete history lines; with ``repair`` a torn last line is cut off the file."""
        return read_jsonl(self.history_path, repair)

    def tally(self, higher_is_better: bool | None = None) -> Tally:
        """Counters, top cells and front of the whole history as it stands."""
        recorded = self.settings()
        if higher_is_better is None:
            higher_is_better = recorded.higher_is_better
        return Tally(higher_is_better, recorded.search.cost_objectives).extend(self.read_history())

    def close(self) -> None:
        if self._history is not None:
            self._history.close()
            self._history = None

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

    def write_latency_table(self, data: dict[str, Any]) -> None:
        """Keep the table a search predicts with, so its resume predicts exactly the same."""
        write_atomic(self.latency_table_path, data)

    def read_latency_table(self) -> dict[str, Any]:
        return load_json(self.latency_table_path)

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
        tally = Tally(recorded.higher_is_better, search.cost_objectives).extend(history)
        elapsed = history[-1].get("t", 0.0) if history else 0.0
        best_file = self.read_best() or {}
        done = tally.evaluations
        return {
            **tally.summary(search.budget, top_k or search.top_k, elapsed,
                            complete=bool(best_file.get("complete")) and (search.budget is None or done >= search.budget)),
            "run_dir": str(self.path), "config": recorded.raw, "time_limit": search.time_limit,
            "rate": done / elapsed if elapsed > 0 else 0.0,
        }
