"""Test doubles for the search tests: a cheap deterministic scorer and an out-of-order executor.

The fake score is a pure function of the cell's canonical key, so isomorphic cells score
the same (as with the real scorer) and runs are reproducible without building networks.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Callable

import search_spaces
from estimators.base import EstimatorResult
from evonas.execution import JobResult, LocalExecutor
from evonas.searching import start_search
from evonas.seeding import stable_seed
from evonas.settings import ScoringSettings

OP_VALUE = {"nor_conv_3x3": 10.0, "nor_conv_1x1": 4.0, "skip_connect": 1.0}


def fake_score(key: str) -> float:
    """More (and bigger) convolutions score higher; a small key-hash jitter breaks ties."""
    return sum(key.count(op) * v for op, v in OP_VALUE.items()) + stable_seed(key) % 1000 / 1e4


class FakeScorer:
    """Scores genotype strings of ``config.space`` with ``fake_score``; NaN for keys in ``nan_keys``."""

    nan_keys: set[str] = set()
    calls: list[str] = []

    def __init__(self, config: ScoringSettings, device: str = "cpu", delay: float = 0.0) -> None:
        self.space = search_spaces.get(config.space)
        self.delay = delay

    def score(self, genotype: str, eval_id: int = 0) -> EstimatorResult:
        key = self.space.str_key(genotype)
        FakeScorer.calls.append(key)
        if self.delay:
            time.sleep(self.delay)
        if key in FakeScorer.nan_keys:
            return EstimatorResult(None, 0.0, "failed", "non-finite score (nan) from fake", {"key": key})
        return EstimatorResult(fake_score(key), 0.001, extra={"key": key})


def local_fake(scoring: ScoringSettings, config: Any = None) -> LocalExecutor:
    """The real in-process executor around the fake scorer (an ``executor_factory``)."""
    return LocalExecutor(scoring, scorer_factory=FakeScorer)


class ShuffledExecutor:
    """``num_workers`` simulated workers whose results come back in a seeded random order."""

    def __init__(self, scoring: ScoringSettings, num_workers: int = 3, seed: int = 0) -> None:
        self.num_workers = num_workers
        self.scorer = FakeScorer(scoring)
        self.rng = random.Random(seed)
        self.jobs: list[tuple[int, str]] = []
        self.max_pending = 0
        self.submitted: list[int] = []

    def submit(self, job_id: int, genotype: str) -> None:
        self.jobs.append((job_id, genotype))
        self.submitted.append(job_id)
        self.max_pending = max(self.max_pending, len(self.jobs))

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        if not self.jobs:
            return []
        job_id, genotype = self.jobs.pop(self.rng.randrange(len(self.jobs)))
        r = self.scorer.score(genotype, job_id)
        return [JobResult(job_id, genotype, r.status, r.score, r.error, r.seconds, "w", r.extra["key"])]

    def pending(self) -> int:
        return len(self.jobs)

    def close(self) -> None:
        self.jobs.clear()

    def __enter__(self) -> "ShuffledExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def recording_factory(seed: int = 3) -> tuple[Callable[..., "ShuffledExecutor"], list["ShuffledExecutor"]]:
    """An executor factory for a resume, and the executors it made (to see what was submitted)."""
    made: list[ShuffledExecutor] = []

    def factory(scoring: ScoringSettings, config: Any = None) -> ShuffledExecutor:
        made.append(ShuffledExecutor(scoring, num_workers=3, seed=seed))
        return made[-1]

    return factory, made


class Killed(BaseException):
    """Stands in for the process dying."""


def history_lines(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def kill_search_when(settings: Any, run_dir: Path, condition: Callable[[list[dict]], bool]) -> tuple[dict, list[dict]]:
    """Run ``start_search`` and "kill -9" it the first time ``condition(history)`` holds.

    The folder is then left as kill -9 leaves it: the last periodic checkpoint and a torn last
    history line. Returns the checkpoint and the complete history lines at the moment of death.
    """
    saved: dict[str, Any] = {}

    class Dying(ShuffledExecutor):
        def wait(self, timeout: float | None = None) -> list[JobResult]:
            if "history" not in saved and condition(history_lines(run_dir)):
                saved["checkpoint"] = (run_dir / "checkpoint.json").read_bytes()
                saved["history"] = (run_dir / "history.jsonl").read_text()
                raise Killed
            return super().wait(timeout)

    try:
        start_search(settings, run_dir=run_dir, executor_factory=lambda s, c: Dying(s, num_workers=3, seed=2))
    except Killed:
        pass
    assert "history" in saved, "the search finished before the condition held"
    (run_dir / "checkpoint.json").write_bytes(saved["checkpoint"])
    (run_dir / "history.jsonl").write_text(saved["history"] + '{"id": 99, "genot')
    return json.loads(saved["checkpoint"]), [json.loads(line) for line in saved["history"].splitlines()]
