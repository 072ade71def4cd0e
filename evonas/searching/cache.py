"""Score cache: a cell that was already scored under the same settings is not scored again.

Evolution proposes many children that are isomorphic to cells it has seen (on NB-201
about 40% of a 500-evaluation run), so answering them from memory saves most of that
work. The key is the cell's canonical key plus a fingerprint of every setting that can
change a score (estimator and its settings incl. the interval, batch policy and size,
dataset, seed, proxy-network options); the data folder is left out because it only says
where the same data lives.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from evonas.scoring.fingerprint import scoring_fingerprint
from evonas.settings import ScoringSettings

__all__ = ["ScoreCache", "scoring_fingerprint"]


class ScoreCache:
    """In-memory map (canonical key, scoring fingerprint) -> score; only successful scores."""

    def __init__(self, config: ScoringSettings) -> None:
        self.fingerprint = scoring_fingerprint(config)
        self._scores: dict[tuple[str, str], float] = {}

    def get(self, key: str) -> float | None:
        """The cached score of the cell with canonical ``key``, or None."""
        return self._scores.get((key, self.fingerprint))

    def put(self, key: str, score: float) -> None:
        """Remember a successful score (the first one wins, so cached answers never drift)."""
        self._scores.setdefault((key, self.fingerprint), float(score))

    def __contains__(self, key: str) -> bool:
        return (key, self.fingerprint) in self._scores

    def __len__(self) -> int:
        return len(self._scores)

    def fill(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Rebuild from history records (resume): every successful score is remembered."""
        for rec in records:
            if rec.get("status") == "ok" and rec.get("key") is not None and rec.get("score") is not None:
                self.put(rec["key"], rec["score"])
