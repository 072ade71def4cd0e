"""A pool of ``ScoreWorker`` Ray actors: one job in flight per actor, results as they finish.

A dead actor is replaced and its job sent again; a job that fails twice is reported failed.
"""
from __future__ import annotations

import math
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import ray
import torch
from ray.actor import ActorHandle
from ray.exceptions import RayError, RayTaskError

from evonas.errors import EvonasError
from evonas.execution.base import Executor, JobResult, ScorerFactory, ScorerLike, Attempt, Job, attempt_job, settle
from evonas.execution.ray_session import RaySession
from evonas.scoring import Scorer
from evonas.settings import ScoringSettings, check_pool
from evonas.user_errors import USER_ERRORS

#: Actors sharing one GPU by default (scoring one small network rarely fills a GPU).
ACTORS_PER_GPU = 4


class ScoreWorker:
    """Ray actor body: receives the scoring config once, loads the data once, scores strings."""

    def __init__(self, config: ScoringSettings, scorer_factory: ScorerFactory = Scorer) -> None:
        torch.set_num_threads(1)  # one actor per core: threads would only fight each other
        self._config = config
        self._factory = scorer_factory
        self._scorer: ScorerLike | None = None

    def start(self) -> None:
        """Build the scorer now, so a start-up error (e.g. missing data) reaches the driver."""
        device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self._scorer = self._factory(self._config, device=device)

    def run(self, job_id: int, genotype: str) -> Attempt:
        if self._scorer is None:  # a replacement actor starts on its first job
            self.start()
        return attempt_job(self._scorer, job_id, genotype)


def plan_pool(workers: int | None, gpus_per_worker: float | None, cpus: float, gpus: float) -> tuple[int, float]:
    """(actors, GPUs per actor) from the user's flags and the cluster's CPUs/GPUs.

    Every actor takes one CPU. Without flags: one actor per CPU, or, when there are GPUs,
    ``ACTORS_PER_GPU`` actors sharing each GPU (as many as the CPUs allow).
    """
    check_pool(workers, gpus_per_worker)
    if gpus_per_worker and gpus == 0:
        raise EvonasError("--gpus-per-worker was given but Ray sees no GPUs; drop --gpus-per-worker")
    cpu_slots = max(1, int(cpus))
    if workers is None:
        if gpus_per_worker:
            workers = min(cpu_slots, max(1, int(gpus / gpus_per_worker)))
        elif gpus_per_worker is None and gpus > 0:
            workers = min(cpu_slots, ACTORS_PER_GPU * max(1, int(gpus)))
        else:
            workers = cpu_slots
    if gpus_per_worker is None:
        gpus_per_worker = min(1.0, math.floor(gpus / workers * 1e4) / 1e4) if gpus > 0 else 0.0
    if workers > cpus:
        raise EvonasError(
            f"--workers {workers} needs {workers} CPUs but the Ray cluster has {cpus:g}; "
            f"use --workers {int(cpus)} or fewer"
        )
    if workers * gpus_per_worker > gpus + 1e-9:
        raise EvonasError(
            f"{workers} workers x {gpus_per_worker:g} GPUs need {workers * gpus_per_worker:g} GPUs "
            f"but the Ray cluster has {gpus:g}; lower --workers or --gpus-per-worker"
        )
    return workers, float(gpus_per_worker)


@dataclass
class _Slot:
    """One actor of the pool and the job it is running, if any."""
    actor: ActorHandle
    name: str
    job: Job | None = None
    started: float = 0.0


class RayExecutor(Executor):
    """A pool of ``ScoreWorker`` actors, one job in flight per actor, results as they finish."""

    def __init__(
        self,
        config: ScoringSettings,
        workers: int | None = None,
        gpus_per_worker: float | None = None,
        address: str | None = None,
        ray_temp_dir: str | None = None,
        scorer_factory: ScorerFactory = Scorer,
    ) -> None:
        self._config = config
        self._factory = scorer_factory
        self._queue: deque[Job] = deque()
        self._inflight: dict[Any, _Slot] = {}
        self._slots: list[_Slot] = []
        self._spawned = 0
        # on a local Ray, an explicit --workers above the core count is honoured
        self._session = RaySession(address, ray_temp_dir, num_cpus=max(os.cpu_count() or 1, workers or 0))
        try:
            resources = ray.cluster_resources()
            self.num_workers, self._gpus = plan_pool(
                workers, gpus_per_worker, resources.get("CPU", 0.0), resources.get("GPU", 0.0)
            )
            self._actor_class = ray.remote(ScoreWorker).options(
                num_cpus=1, num_gpus=self._gpus, max_restarts=0, max_task_retries=0
            )
            self._slots = [self._spawn() for _ in range(self.num_workers)]
            self._start_all()
        except BaseException:
            self.close()
            raise

    def _spawn(self) -> _Slot:
        name, self._spawned = f"w{self._spawned}", self._spawned + 1
        return _Slot(self._actor_class.remote(self._config, self._factory), name)

    def _start_all(self) -> None:
        """Load the data in every actor in parallel; report a user error (e.g. no data) as itself."""
        try:
            ray.get([slot.actor.start.remote() for slot in self._slots])
        except RayTaskError as exc:
            if isinstance(exc.cause, USER_ERRORS):
                raise exc.cause from None
            raise

    def submit(self, job_id: int, genotype: str) -> None:
        self._queue.append(Job(job_id, genotype))
        self._dispatch()

    def _dispatch(self) -> None:
        for slot in self._slots:
            if not self._queue:
                return
            if slot.job is None:
                job = slot.job = self._queue.popleft()
                job.attempts += 1
                slot.started = time.perf_counter()
                self._inflight[slot.actor.run.remote(job.job_id, job.genotype)] = slot

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        deadline = None if timeout is None else time.monotonic() + timeout
        results: list[JobResult] = []
        while not results and self._inflight:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            first, _ = ray.wait(list(self._inflight), num_returns=1, timeout=remaining)
            if not first:
                break
            ready, _ = ray.wait(list(self._inflight), num_returns=len(self._inflight), timeout=0)
            for ref in ready:
                result = self._collect(ref)
                if result is not None:
                    results.append(result)
            self._dispatch()
        return results

    def _collect(self, ref: Any) -> JobResult | None:
        """The finished job's result; a dead actor is replaced and a retryable job requeued first."""
        slot = self._inflight.pop(ref)
        job, slot.job = slot.job, None
        assert job is not None
        worker = slot.name
        seconds = time.perf_counter() - slot.started
        try:
            attempt = ray.get(ref)
        except RayTaskError as exc:  # the actor method raised; the actor itself is fine
            attempt = Attempt("failed", None, f"{type(exc.cause).__name__}: {exc.cause}", seconds, raised=True)
        except RayError as exc:  # the actor died (crash, kill, out of memory) or became unreachable
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            attempt = Attempt("failed", None, f"worker {worker} died: {reason}", seconds, raised=True)
            self._replace(slot)
        result = settle(job, attempt, worker)
        if result is None:
            self._queue.appendleft(job)
        return result

    def _replace(self, slot: _Slot) -> None:
        ray.kill(slot.actor, no_restart=True)
        self._slots[self._slots.index(slot)] = self._spawn()

    def pending(self) -> int:
        return len(self._queue) + len(self._inflight)

    def close(self) -> None:
        """Stop the actors; shut Ray down only if this executor started or joined it."""
        self._queue.clear()
        self._inflight.clear()
        if ray.is_initialized():
            for slot in self._slots:
                ray.kill(slot.actor, no_restart=True)
        self._slots = []
        self._session.close()
