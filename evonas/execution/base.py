"""What every executor is: the protocol the search drives, and how one try of a job settles.

The search submits ``(job_id, genotype)`` pairs and collects ``JobResult``s as they finish,
without knowing where a job ran. Every submitted job comes back exactly once: scored, failed
by its estimator (a NaN/inf score, not retried), or failed after ``MAX_ATTEMPTS`` tries when
its worker raised or died.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from estimators.base import EstimatorResult

#: Tries per job when the worker raised or died; the job is then reported failed.
MAX_ATTEMPTS = 2
#: What of a result's ``extra`` goes into its history line: a retry at half the batch after out of memory.
RECORDED_EXTRA = ("oom_retry", "batch_size")


class ScorerLike(Protocol):
    def score(self, genotype: str, eval_id: int = 0) -> EstimatorResult: ...


#: Builds a worker's scorer as ``factory(config, device=...)``: ``Scorer``, or e.g. a
#: ``partial(Scorer, dataset=...)`` sharing data already loaded in process.
ScorerFactory = Callable[..., ScorerLike]


@dataclass
class JobResult:
    """One finished job, as the search records it."""

    job_id: int
    genotype: str
    status: str  # "ok" | "failed"
    score: float | None
    error: str | None
    seconds: float  # time the worker spent on the last attempt
    worker: str
    key: str | None
    attempts: int = 1
    notes: dict[str, Any] = field(default_factory=dict)  # recorded in the history line (RECORDED_EXTRA)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Executor(Protocol):
    """Scores submitted genotype strings; ``wait`` hands back results as jobs finish."""

    #: Jobs the search should keep submitted; a Ray pool's grows and shrinks with the cluster.
    num_workers: int

    def submit(self, job_id: int, genotype: str) -> None: ...

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        """At least one finished result, unless nothing is pending or ``timeout`` passes."""
        ...

    def pending(self) -> int:
        """Jobs submitted and not yet returned by ``wait``."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class Job:
    job_id: int
    genotype: str
    attempts: int = 0
    alone: bool = False  # its batch's worker died: sent on its own until it settles, to find the culprit


@dataclass
class Attempt:
    """What one try of a job produced; ``raised`` marks a worker fault worth one retry."""

    status: str
    score: float | None
    error: str | None
    seconds: float
    key: str | None = None
    raised: bool = False
    notes: dict[str, Any] = field(default_factory=dict)


def attempt_job(scorer: ScorerLike, job_id: int, genotype: str) -> Attempt:
    """Score one job without raising: an exception becomes a retryable failed attempt."""
    start = time.perf_counter()
    try:
        result = scorer.score(genotype, eval_id=job_id)
    except Exception as exc:  # noqa: BLE001 - any worker fault is reported with the job
        return Attempt("failed", None, f"{type(exc).__name__}: {exc}", time.perf_counter() - start, raised=True)
    return Attempt(result.status, result.score, result.error, time.perf_counter() - start, result.extra.get("key"),
                   notes={k: result.extra[k] for k in RECORDED_EXTRA if k in result.extra})


def settle(job: Job, attempt: Attempt, worker: str) -> JobResult | None:
    """The job's result, or None when it deserves another try."""
    if attempt.raised and job.attempts < MAX_ATTEMPTS:
        return None
    return JobResult(
        job.job_id, job.genotype, attempt.status, attempt.score, attempt.error,
        attempt.seconds, worker, attempt.key, job.attempts, attempt.notes,
    )
