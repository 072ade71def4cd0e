"""The run folder: everything one search leaves behind, written so a kill -9 loses nothing.

Layout::

    runs/<time>-<space>-<estimator>/
      config.json       resolved settings, scoring config, estimator settings, library versions
      history.jsonl     one line per finished evaluation (the source of truth)
      checkpoint.json   evolution state every K evaluations and on Ctrl-C (atomic replace)
      best.json         best cell and top-k so far (atomic replace)
      tb/               TensorBoard scalars, histogram, best genotype text, hparams

History lines are appended, flushed and fsync'ed one by one, and the checkpoint records
how many lines it covers, so a resume rebuilds the exact state from the checkpoint plus
the lines written after it. A torn last line (killed mid-write) is cut off on resume.
"""
from __future__ import annotations

import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from evonas.config import load_json, save_json
from evonas.errors import EvonasError

CONFIG = "config.json"
HISTORY = "history.jsonl"
CHECKPOINT = "checkpoint.json"
BEST = "best.json"
TENSORBOARD = "tb"
VERSIONED = ("torch", "deap", "ray", "numpy", "networkx", "evonas")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a result, plus Python's."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
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


class RunFolder:
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

    # ---- creation / opening -------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike) -> "RunFolder":
        """A new run folder; refuses one that already holds a run (resume that instead)."""
        folder = cls(path)
        if folder.config_path.exists():
            raise EvonasError(f"{folder.path} already holds a run; continue it with --resume {folder.path} "
                              "or pick another --run-dir")
        try:
            folder.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EvonasError(f"cannot create run folder {folder.path}: {exc.strerror}") from None
        return folder

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunFolder":
        """An existing run folder (EvonasError if it is none)."""
        folder = cls(path)
        if not folder.path.is_dir():
            raise EvonasError(f"run folder {folder.path} does not exist")
        if not folder.config_path.is_file():
            raise EvonasError(f"{folder.path} has no {CONFIG}; is it a run folder made by `evonas search`?")
        return folder

    # ---- config -------------------------------------------------------------------
    def write_config(self, data: dict[str, Any]) -> None:
        save_json(self.config_path, data)

    def read_config(self) -> dict[str, Any]:
        return load_json(self.config_path)

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


class Board:
    """TensorBoard view of a run (``tb/``): fitness curves, speed, cache hits, best cell."""

    def __init__(self, folder: RunFolder, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # heavy import, only when searching

        self.writer = SummaryWriter(str(folder.tb_dir), purge_step=purge_step)

    def step(self, step: int, stats: dict[str, float] | None, best_so_far: float | None, rate: float,
             hit_rate: float) -> None:
        """Per-evaluation scalars; ``stats`` summarises the current population (None before any)."""
        if stats:
            for name in ("best", "mean", "median"):
                self.writer.add_scalar(f"fitness/{name}", stats[name], step)
        if best_so_far is not None:
            self.writer.add_scalar("fitness/best_so_far", best_so_far, step)
        self.writer.add_scalar("speed/evaluations_per_second", rate, step)
        self.writer.add_scalar("cache/hit_rate", hit_rate, step)

    def histogram(self, step: int, scores: Iterable[float]) -> None:
        values = np.fromiter(scores, dtype=np.float64)
        if values.size:
            self.writer.add_histogram("fitness/population", values, step)

    def best(self, step: int, genotype: str, score: float) -> None:
        self.writer.add_text("best/genotype", f"`{genotype}` score {score:.6g}", step)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        clean = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}
        self.writer.add_hparams(clean, metrics, run_name="hparams")

    def close(self) -> None:
        self.writer.close()
