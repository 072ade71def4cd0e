"""Executors: turn genotype strings into scores, in process or on a pool of Ray actors.

The search submits ``(job_id, genotype)`` pairs and collects ``JobResult``s as they finish,
without knowing where a job ran. Every submitted job comes back exactly once: scored, failed
by its estimator (a NaN/inf score, not retried), or failed after ``MAX_ATTEMPTS`` tries when
its worker raised or died.
"""
from __future__ import annotations

import math
import os
import shutil
import socket
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

import torch

from estimators.base import EstimatorResult
from evonas.errors import USER_ERRORS, EvonasError
from evonas.scoring import Scorer, ScoringConfig

if TYPE_CHECKING:
    from ray.actor import ActorHandle

#: Tries per job when the worker raised or died; the job is then reported failed.
MAX_ATTEMPTS = 2
#: Actors sharing one GPU by default (scoring one small network rarely fills a GPU).
ACTORS_PER_GPU = 4
#: Seconds to wait for a TCP connection to a Ray head before calling it unreachable.
CONNECT_TIMEOUT_S = 3.0
#: A single-machine Ray: every socket on 127.0.0.1, no token auth, no usage reports.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
EXECUTOR_KINDS = ("local", "ray")


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

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Executor(Protocol):
    """Scores submitted genotype strings; ``wait`` hands back results as jobs finish."""

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
class _Job:
    job_id: int
    genotype: str
    attempts: int = 0


@dataclass
class _Attempt:
    """What one try of a job produced; ``raised`` marks a worker fault worth one retry."""

    status: str
    score: float | None
    error: str | None
    seconds: float
    key: str | None = None
    raised: bool = False


def _attempt(scorer: ScorerLike, job_id: int, genotype: str) -> _Attempt:
    """Score one job without raising: an exception becomes a retryable failed attempt."""
    start = time.perf_counter()
    try:
        result = scorer.score(genotype, eval_id=job_id)
    except Exception as exc:  # noqa: BLE001 - any worker fault is reported with the job
        return _Attempt("failed", None, f"{type(exc).__name__}: {exc}", time.perf_counter() - start, raised=True)
    return _Attempt(result.status, result.score, result.error, time.perf_counter() - start, result.extra.get("key"))


def _settle(job: _Job, attempt: _Attempt, worker: str) -> JobResult | None:
    """The job's result, or None when it deserves another try."""
    if attempt.raised and job.attempts < MAX_ATTEMPTS:
        return None
    return JobResult(
        job.job_id, job.genotype, attempt.status, attempt.score, attempt.error,
        attempt.seconds, worker, attempt.key, job.attempts,
    )


class LocalExecutor(Executor):
    """Scores in this process, one job per ``wait``; for tests and one-core machines."""

    num_workers = 1

    def __init__(self, config: ScoringConfig, scorer_factory: ScorerFactory = Scorer) -> None:
        self._scorer = scorer_factory(config, device="cpu")
        self._queue: deque[_Job] = deque()

    def submit(self, job_id: int, genotype: str) -> None:
        self._queue.append(_Job(job_id, genotype))

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        """Run the oldest queued job now and return its result (``timeout`` cannot cut it short)."""
        if not self._queue:
            return []
        job = self._queue.popleft()
        while True:
            job.attempts += 1
            result = _settle(job, _attempt(self._scorer, job.job_id, job.genotype), "local")
            if result is not None:
                return [result]

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self._queue.clear()


class ScoreWorker:
    """Ray actor body: receives the scoring config once, loads the data once, scores strings."""

    def __init__(self, config: ScoringConfig, scorer_factory: ScorerFactory = Scorer) -> None:
        torch.set_num_threads(1)  # one actor per core: threads would only fight each other
        self._config = config
        self._factory = scorer_factory
        self._scorer: ScorerLike | None = None

    def start(self) -> None:
        """Build the scorer now, so a start-up error (e.g. missing data) reaches the driver."""
        import ray

        device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self._scorer = self._factory(self._config, device=device)

    def run(self, job_id: int, genotype: str) -> _Attempt:
        if self._scorer is None:  # a replacement actor starts on its first job
            self.start()
        return _attempt(self._scorer, job_id, genotype)


def plan_pool(workers: int | None, gpus_per_worker: float | None, cpus: float, gpus: float) -> tuple[int, float]:
    """(actors, GPUs per actor) from the user's flags and the cluster's CPUs/GPUs.

    Every actor takes one CPU. Without flags: one actor per CPU, or, when there are GPUs,
    ``ACTORS_PER_GPU`` actors sharing each GPU (as many as the CPUs allow).
    """
    if workers is not None and workers < 1:
        raise EvonasError(f"--workers must be at least 1, not {workers}")
    if gpus_per_worker is not None:
        if gpus_per_worker < 0 or (gpus_per_worker > 1 and not float(gpus_per_worker).is_integer()):
            raise EvonasError(
                f"--gpus-per-worker must be a fraction in [0, 1] or a whole number, not {gpus_per_worker}"
            )
        if gpus_per_worker > 0 and gpus == 0:
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


def check_reachable(address: str) -> None:
    """Fail in seconds, with what to do, when nothing listens at a ``HOST:PORT`` Ray address."""
    host, sep, port = address.rpartition(":")
    if not (sep and host and port.isdigit()):
        raise EvonasError(f"--address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379) or 'auto'")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        ip = "127.0.0.1" if _is_loopback(host) else host
        raise EvonasError(
            f"could not reach a Ray cluster at {address} ({exc.strerror or exc}): start a head there with "
            f"`ray start --head --node-ip-address {ip} --port {port}` or drop --address to use a local Ray"
        ) from None


def _is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.")


def _stay_on_loopback() -> None:
    """Keep this driver and the Ray processes it starts on 127.0.0.1.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when it is imported; left on, it
    rewrites a 127.0.0.1 address to the machine's outward IP, where a loopback head is not
    listening. The environment covers the processes Ray starts, the constant this process.
    """
    from ray._private import ray_constants

    os.environ.update(RAY_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False


class RaySession:
    """This process's connection to Ray; ``close`` stops or leaves only what it started.

    Joins ``address`` (``HOST:PORT`` or ``auto``), or starts a loopback-only local Ray with
    its own temp folder (removed on close); a Ray this process already connected is reused.
    """

    def __init__(
        self,
        address: str | None = None,
        temp_dir: str | None = None,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
    ) -> None:
        import logging

        import ray

        self.owned = not ray.is_initialized()
        self._temp_dir: str | None = None  # removed on close: we made it
        if not self.owned:
            return
        quiet = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
        if address is None:
            _stay_on_loopback()
            if temp_dir is None:
                temp_dir = self._temp_dir = tempfile.mkdtemp(prefix="evonas-ray-")
            try:
                ray.init(
                    num_cpus=num_cpus, num_gpus=num_gpus, _temp_dir=temp_dir, _node_ip_address="127.0.0.1", **quiet
                )
            except BaseException:
                self.close()
                raise
            return
        loopback = {}
        if address != "auto":
            check_reachable(address)
            if _is_loopback(address.rpartition(":")[0]):
                _stay_on_loopback()
                loopback = {"_node_ip_address": "127.0.0.1"}
        try:
            ray.init(address=address, **loopback, **quiet)
        except ConnectionError as exc:
            raise EvonasError(
                f"could not join a Ray cluster at {address!r} ({str(exc).splitlines()[0]}): start one with "
                "`ray start --head --node-ip-address 127.0.0.1 --port 6379` or drop --address"
            ) from None

    def close(self) -> None:
        import ray

        if self.owned and ray.is_initialized():
            ray.shutdown()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None


@dataclass
class _Slot:
    """One actor of the pool and the job it is running, if any."""

    actor: "ActorHandle"
    name: str
    job: _Job | None = None
    started: float = 0.0


class RayExecutor(Executor):
    """A pool of ``ScoreWorker`` actors, one job in flight per actor, results as they finish."""

    def __init__(
        self,
        config: ScoringConfig,
        workers: int | None = None,
        gpus_per_worker: float | None = None,
        address: str | None = None,
        ray_temp_dir: str | None = None,
        scorer_factory: ScorerFactory = Scorer,
    ) -> None:
        import ray

        self._config = config
        self._factory = scorer_factory
        self._queue: deque[_Job] = deque()
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
        import ray
        from ray.exceptions import RayTaskError

        try:
            ray.get([slot.actor.start.remote() for slot in self._slots])
        except RayTaskError as exc:
            if isinstance(exc.cause, USER_ERRORS):
                raise exc.cause from None
            raise

    def submit(self, job_id: int, genotype: str) -> None:
        self._queue.append(_Job(job_id, genotype))
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
        import ray

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
        import ray
        from ray.exceptions import RayError, RayTaskError

        slot = self._inflight.pop(ref)
        job, slot.job = slot.job, None
        assert job is not None
        worker = slot.name
        seconds = time.perf_counter() - slot.started
        try:
            attempt = ray.get(ref)
        except RayTaskError as exc:  # the actor method raised; the actor itself is fine
            attempt = _Attempt("failed", None, f"{type(exc.cause).__name__}: {exc.cause}", seconds, raised=True)
        except RayError as exc:  # the actor died (crash, kill, out of memory) or became unreachable
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            attempt = _Attempt("failed", None, f"worker {worker} died: {reason}", seconds, raised=True)
            self._replace(slot)
        result = _settle(job, attempt, worker)
        if result is None:
            self._queue.appendleft(job)
        return result

    def _replace(self, slot: _Slot) -> None:
        import ray

        ray.kill(slot.actor, no_restart=True)
        self._slots[self._slots.index(slot)] = self._spawn()

    def pending(self) -> int:
        return len(self._queue) + len(self._inflight)

    def close(self) -> None:
        """Stop the actors; shut Ray down only if this executor started or joined it."""
        import ray

        self._queue.clear()
        self._inflight.clear()
        if ray.is_initialized():
            for slot in self._slots:
                ray.kill(slot.actor, no_restart=True)
        self._slots = []
        self._session.close()


def make_executor(
    config: ScoringConfig,
    kind: str = "local",
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    address: str | None = None,
    ray_temp_dir: str | None = None,
) -> Executor:
    """The executor the CLI flags ask for; ``--address`` or ``--workers`` only make sense with Ray."""
    if kind == "local":
        if address is not None or gpus_per_worker is not None or (workers or 1) != 1:
            raise EvonasError("--workers, --gpus-per-worker and --address need the Ray executor; add --executor ray")
        return LocalExecutor(config)
    if kind == "ray":
        return RayExecutor(config, workers, gpus_per_worker, address, ray_temp_dir)
    raise EvonasError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTOR_KINDS)}")
