"""Score cache: a cell that was already scored under the same settings is not scored again.

Evolution proposes many children that are isomorphic to cells it has seen (on NB-201
about 40% of a 500-evaluation run), so answering them from memory saves most of that
work. The key is the cell's canonical key plus a fingerprint of every setting that can
change a score (estimator and its settings incl. the interval, batch policy and size,
dataset, seed, proxy-network options); the data folder is left out because it only says
where the same data lives.

With a score store (``--score-store FILE``) the cache also reads and appends a JSON-lines file
that other searches share: several seeds of a benchmark, or two searches running at once, then
score each cell once. Store entries carry the code fingerprint too (``score_key``), so
scores made by other estimator code are never reused.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from evonas.runs import SYNC_INTERVAL_S, HistoryWriter, read_score_folder
from estimators.base import EstimatorResult
from evonas.scoring.composite import Composite, make_estimator
from evonas.scoring.cache_file import locked
from evonas.scoring.fingerprint import scoring_fingerprint
from evonas.scoring.score_key import score_key
from evonas.settings import ScoringSettings

__all__ = ["ScoreCache", "ScoreStore", "scoring_fingerprint", "score_key"]


class ScoreStore:
    """A JSON-lines file of ``{"key", "fingerprint", "score"}`` that several processes share.

    Appends take an exclusive lock (so two searches never interleave their lines) and go through
    a ``HistoryWriter`` (each line reaches the kernel at once; fsync'ed in groups). A line torn by
    a killed writer is skipped when read, and the next append starts on a fresh line.
    """

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path, self.fingerprint = Path(path), fingerprint
        self._read_to = 0  # bytes of the file already read
        self._writer: HistoryWriter | None = None

    def read_new(self) -> dict[str, float]:
        """Scores of this fingerprint in the complete lines written since the last read."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._read_to)
                raw = fh.read()
        except FileNotFoundError:
            return {}
        complete = raw[: raw.rfind(b"\n") + 1]
        self._read_to += len(complete)
        found: dict[str, float] = {}
        for line in complete.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # torn by a killed writer
            if not isinstance(entry, dict) or entry.get("fingerprint") != self.fingerprint:
                continue
            score = entry.get("score")
            if isinstance(entry.get("key"), str) and isinstance(score, (int, float)) and math.isfinite(score):
                found.setdefault(entry["key"], float(score))
        return found

    def append(self, key: str, score: float) -> None:
        line = json.dumps({"key": key, "fingerprint": self.fingerprint, "score": score}, sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path):
            if self._writer is None:
                self._writer = HistoryWriter(self.path, SYNC_INTERVAL_S)
            if not self._ends_a_line():
                line = "\n" + line  # close a line torn by a killed writer
            self._writer.append(line)

    def _ends_a_line(self) -> bool:
        with open(self.path, "rb") as fh:
            if fh.seek(0, 2) == 0:
                return True
            fh.seek(-1, 2)
            return fh.read(1) == b"\n"

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _fingerprint_scores(lines: Iterable[Mapping[str, Any]], fingerprint: str) -> dict[str, float]:
    """Genotype -> score of the successful, finite lines made with ``fingerprint``."""
    found: dict[str, float] = {}
    for line in lines:
        score = line.get("score")
        if (line.get("key") == fingerprint and line.get("status") == "ok" and isinstance(line.get("arch"), str)
                and isinstance(score, (int, float)) and math.isfinite(score)):
            found.setdefault(line["arch"], float(score))
    return found


def folder_scores(folder: Path, config: ScoringSettings) -> dict[str, float]:
    """Genotype -> score under ``config`` of every cell an ``evonas correlate`` folder scored.

    A correlate line's ``key`` is the ``score_key`` of its settings and its ``arch`` the
    cell, so a search reads exactly the score that scoring that genotype gives. A composite is
    combined from its parts' stored scores by the composite itself (its parts are scored each as
    if alone, so this is the live composite score), with the normalisation ``config`` fixed.
    """
    lines = read_score_folder(folder)
    estimator = make_estimator(config.estimator, config.estimator_settings)
    if not isinstance(estimator, Composite):
        return _fingerprint_scores(lines, score_key(config))
    parts = {p.name: _fingerprint_scores(lines, score_key(
        replace(config, estimator=p.name, estimator_settings=p.settings))) for p in estimator.resolved}
    found: dict[str, float] = {}
    for genotype in set.intersection(*(set(scores) for scores in parts.values())):
        result = estimator.combine({name: EstimatorResult(scores[genotype], 0.0) for name, scores in parts.items()}, 0.0)
        if result.ok and result.score is not None:
            found[genotype] = result.score
    return found


class ScoreCache:
    """In-memory map (canonical key, scoring fingerprint) -> score; only successful scores.

    With ``store`` a file, it starts from that file's scores, looks there again before a cell is
    scored (another search may have scored it meanwhile) and appends every new score. With
    ``store`` a folder written by ``evonas correlate``, it answers a cell from that folder's score
    of the same genotype (read-only), so searches over a fully scored table replay live scoring.
    """

    def __init__(self, config: ScoringSettings, store: str | Path | None = None) -> None:
        self.fingerprint = scoring_fingerprint(config)
        self._scores: dict[tuple[str, str], float] = {}
        self._from_store: set[str] = set()
        self.store: ScoreStore | None = None
        self._by_genotype: dict[str, float] = {}
        if store is not None and Path(store).is_dir():
            self._by_genotype = folder_scores(Path(store), config)
            if not self._by_genotype:
                warnings.warn(f"score store {store} holds no scores made with these settings and this code "
                              "(other estimator settings, seed, batch, or changed code): every cell is scored")
        elif store is not None:
            self.store = ScoreStore(Path(store), score_key(config))
        self._read_store()

    def _read_store(self) -> None:
        if self.store is None:
            return
        for key, score in self.store.read_new().items():
            if (key, self.fingerprint) not in self._scores:
                self._scores[key, self.fingerprint] = score
                self._from_store.add(key)

    def get(self, key: str, genotype: str | None = None) -> float | None:
        """The cached score of the cell with canonical ``key`` (this run's, or the store's), or None;
        from a correlate folder, the score of ``genotype`` itself."""
        if (key, self.fingerprint) not in self._scores:
            self._read_store()
            if genotype in self._by_genotype:
                self._scores[key, self.fingerprint] = self._by_genotype[genotype]
                self._from_store.add(key)
        return self._scores.get((key, self.fingerprint))

    def source(self, key: str) -> str:
        """Where the cached score of ``key`` came from: ``store`` (another search) or ``cache`` (this run)."""
        return "store" if key in self._from_store else "cache"

    def put(self, key: str, score: float) -> None:
        """Remember a successful score (the first one wins, so cached answers never drift); a new one
        also goes to the store."""
        if (key, self.fingerprint) in self._scores:
            return
        self._scores[key, self.fingerprint] = float(score)
        if self.store is not None:
            self.store.append(key, float(score))

    def __contains__(self, key: str) -> bool:
        return (key, self.fingerprint) in self._scores

    def __len__(self) -> int:
        return len(self._scores)

    def fill(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Rebuild from history records (resume): every successful score is remembered."""
        for rec in records:
            if rec.get("status") == "ok" and rec.get("key") is not None and rec.get("score") is not None:
                self.put(rec["key"], rec["score"])

    def close(self) -> None:
        """Put the store's appended lines on disk."""
        if self.store is not None:
            self.store.close()
