"""In-process execution: one job at a time in this process; for tests and one-core use."""
from __future__ import annotations

from collections import deque

from evonas.execution.base import Executor, JobResult, ScorerFactory, Job, attempt_job, settle
from evonas.scoring import Scorer
from evonas.settings import ScoringSettings


class LocalExecutor(Executor):
    """Scores in this process, one job per ``wait``; for tests and one-core machines."""

    num_workers = 1

    def __init__(self, config: ScoringSettings, scorer_factory: ScorerFactory = Scorer) -> None:
        self._scorer = scorer_factory(config, device="cpu")
        self._queue: deque[Job] = deque()

    def submit(self, job_id: int, genotype: str) -> None:
        self._queue.append(Job(job_id, genotype))

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        """Run the oldest queued job now and return its result (``timeout`` cannot cut it short)."""
        if not self._queue:
            return []
        job = self._queue.popleft()
        while True:
            job.attempts += 1
            result = settle(job, attempt_job(self._scorer, job.job_id, job.genotype), "local")
            if result is not None:
                return [result]

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self._queue.clear()
