"""An elastic pool of ``ScoreWorker`` Ray actors that never lets a job wait on an actor that cannot start.

Jobs wait in the pool's own queue and go only to actors that have started (data loaded), a
few calls at a time per actor so the next job is already there when one finishes; a call may
carry several jobs (``jobs_per_call``) to divide Ray's per-call cost when evaluations are fast. The pool follows
the cluster: about once a second it compares its actors with the resources of the live nodes,
starts actors when nodes join (never more than ``--workers`` when given), drops actors whose
node left (their jobs go back to the queue without using up a try) and gives up on actors that
cannot be placed. A job that fails twice (its worker raised or died) is reported failed.
"""
from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import ray
import torch
from ray.actor import ActorHandle
from ray.exceptions import RayError, RayTaskError

import search_spaces

from evonas.data import ImageDataset, load_dataset
from evonas.errors import DataError, EvonasError
from evonas.execution.base import (
    Attempt,
    Executor,
    Job,
    JobResult,
    ScorerFactory,
    ScorerLike,
    attempt_job,
    settle,
)
from evonas.execution.ray_session import RaySession
from evonas.scoring import Scorer
from evonas.settings import ScoringSettings, check_pool
from evonas.user_errors import USER_ERRORS

#: Actors sharing one GPU by default (scoring one small network rarely fills a GPU).
ACTORS_PER_GPU = 4
#: Calls in flight per actor: the next one waits in the actor while the current one runs,
#: which hides the driver round trip (a few ms) behind fast (GPU) evaluations.
CALLS_PER_ACTOR = 2
#: Seconds between looks at the cluster's nodes (joins, departures, unplaceable actors).
RESCAN_S = 1.0
#: Seconds the pool waits with jobs queued and not one actor started before it gives up.
START_TIMEOUT_S = 300.0
#: Actor starts that may die in a row (crash on import, out of memory) before the pool gives up.
MAX_START_DEATHS = 8


def _spaces_to_ship(name: str) -> dict[str, type]:
    """The space's class when actors cannot import it by name (registered from Python: a notebook, a
    script, a test); its module then travels by value, since the actors' processes may not have it."""
    shipped = search_spaces.classes_to_ship(name)
    for cls in shipped.values():
        module = sys.modules.get(cls.__module__)
        if module is not None and cls.__module__ != "__main__":
            ray.cloudpickle.register_pickle_by_value(module)
    return shipped


def node_label(ip: str, node_id: str) -> str:
    """How results name a Ray node: its IP and the start of its id (several nodes may share an IP)."""
    return f"{ip}/{node_id[:8]}"


class ScoreWorker:
    """Ray actor body: receives the scoring config once, loads the data once, scores strings."""

    def __init__(self, config: ScoringSettings, scorer_factory: ScorerFactory = Scorer,
                 dataset: ImageDataset | None = None, spaces: dict[str, type] | None = None) -> None:
        """``spaces``: classes of spaces registered from Python in the driver, which this process
        could not find by itself (built-ins and entry-point plug-ins it finds on its own)."""
        torch.set_num_threads(1)  # one actor per core: threads would only fight each other
        for cls in (spaces or {}).values():
            search_spaces.register(cls)
        self._config = config
        self._factory = scorer_factory if dataset is None else partial(scorer_factory, dataset=dataset)
        self._scorer: ScorerLike | None = None

    def start(self) -> dict[str, Any]:
        """Build the scorer; say where this actor runs and on which device.

        A missing dataset names the node, so the driver's one-line error says which machine
        lacks it. A GPU that Ray assigned but torch cannot use (CPU-only torch, no driver, a
        fake GPU) falls back to CPU, and the returned ``warning`` says so.
        """
        context = ray.get_runtime_context()
        node_id, ip = context.get_node_id(), ray.util.get_node_ip_address()
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        device = "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"
        warning = None
        if gpu_ids and device == "cpu":
            warning = (f"Ray node {node_label(ip, node_id)} gave a worker GPU {','.join(gpu_ids)} but torch there "
                       f"sees no CUDA device (torch {torch.__version__}); that worker scores on CPU")
        try:
            self._scorer = self._factory(self._config, device=device)
        except DataError as exc:
            raise DataError(f"on Ray node {node_label(ip, node_id)}: {exc}") from None
        return {"node_id": node_id, "ip": ip, "device": device, "gpu_ids": gpu_ids,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "warning": warning}

    def run(self, jobs: list[tuple[int, str]]) -> list[Attempt]:
        """Score ``(job_id, genotype)`` pairs one after the other; never raises for a job."""
        assert self._scorer is not None, "start() runs before any job"
        return [attempt_job(self._scorer, job_id, genotype) for job_id, genotype in jobs]


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


@dataclass(eq=False)
class _Actor:
    """One actor of the pool: starting (``start_ref`` set) or started (``node`` known)."""

    handle: ActorHandle
    name: str
    start_ref: Any
    node_id: str = ""
    node: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # what ``ScoreWorker.start`` reported
    alive: bool = True
    alone: bool = False  # running a suspect job with nothing queued behind it
    calls: list[Any] = field(default_factory=list)  # refs of its calls in flight, oldest first

    @property
    def label(self) -> str:
        return f"{self.name}@{self.node}"


class RayExecutor(Executor):
    """An elastic pool of ``ScoreWorker`` actors; results come back as jobs finish."""

    def __init__(
        self,
        config: ScoringSettings,
        workers: int | None = None,
        gpus_per_worker: float | None = None,
        address: str | None = None,
        ray_temp_dir: str | None = None,
        scorer_factory: ScorerFactory = Scorer,
        calls_per_actor: int = CALLS_PER_ACTOR,
        jobs_per_call: int = 1,
        ship_data: bool = False,
        start_timeout: float = START_TIMEOUT_S,
    ) -> None:
        """``calls_per_actor`` x ``jobs_per_call`` jobs are in flight per actor. ``ship_data``: load
        the dataset here and put it in Ray's object store once; actors score from that copy
        instead of reading ``data_dir`` on their own node."""
        if calls_per_actor < 1 or jobs_per_call < 1:
            raise EvonasError(f"calls per actor and jobs per call must be at least 1, not {calls_per_actor} "
                              f"and {jobs_per_call}")
        self._config = config
        self._factory = scorer_factory
        self._depth, self._batch = calls_per_actor, jobs_per_call
        self._start_timeout = start_timeout
        self._cap = workers
        self._queue: deque[Job] = deque()
        self._inflight: dict[Any, tuple[_Actor, list[Job]]] = {}
        self._starting: dict[Any, _Actor] = {}
        self._actors: list[_Actor] = []
        self._free: deque[_Actor] = deque()  # one entry per free call slot of a started actor
        self._spawned = 0
        self._start_deaths = 0
        self._next_scan = 0.0
        self._last_started = time.monotonic()
        self._dataset_ref: Any = None
        self._spaces = _spaces_to_ship(config.space)
        # on a local Ray, an explicit --workers above the core count is honoured
        self._session = RaySession(address, ray_temp_dir, num_cpus=max(os.cpu_count() or 1, workers or 0))
        try:
            resources = ray.cluster_resources()
            count, self._gpus = plan_pool(
                workers, gpus_per_worker, resources.get("CPU", 0.0), resources.get("GPU", 0.0)
            )
            self._actor_class = ray.remote(ScoreWorker).options(
                num_cpus=1, num_gpus=self._gpus, max_restarts=0, max_task_retries=0
            )
            if ship_data:
                self._dataset_ref = ray.put(load_dataset(config.dataset, split="train", data_dir=config.data_dir))
            for _ in range(count):
                self._spawn()
            self._start_all()
        except BaseException:
            self.close()
            raise

    # ---- the pool -------------------------------------------------------------------
    @property
    def num_workers(self) -> int:
        """Jobs the search should keep in flight: a few per started actor (at least one actor's worth)."""
        return self.jobs_per_actor * max(1, self.started)

    @property
    def jobs_per_actor(self) -> int:
        return self._depth * self._batch

    @property
    def actors(self) -> int:
        """Actors of the pool, started or still starting."""
        return len(self._actors)

    @property
    def started(self) -> int:
        return len(self._actors) - len(self._starting)

    def placement(self) -> dict[str, dict[str, Any]]:
        """Started actors: ``name -> {node (ip/node id), device, gpu_ids, cuda_visible_devices, ...}``."""
        return {a.name: {**a.info, "node": a.node} for a in self._actors if a.start_ref is None}

    def _spawn(self) -> None:
        name, self._spawned = f"w{self._spawned}", self._spawned + 1
        handle = self._actor_class.remote(self._config, self._factory, self._dataset_ref, spaces=self._spaces)
        actor = _Actor(handle, name, handle.start.remote())
        self._actors.append(actor)
        self._starting[actor.start_ref] = actor

    def _start_all(self) -> None:
        """Wait for the first actors to load their data, so a start-up error (e.g. no dataset)
        comes before any run folder exists. Once one has started, each next one gets as long as
        the first took (plus a few seconds); actors slower than that start in the background."""
        began = time.monotonic()
        hard_deadline = deadline = began + self._start_timeout
        first: float | None = None  # seconds the first actor took to start
        while self._starting:
            ready, _ = ray.wait(list(self._starting), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            self._on_started(ready[0])
            if self.started:
                first = first if first is not None else time.monotonic() - began
                deadline = min(hard_deadline, time.monotonic() + first + 5.0)
        if not self.started:
            raise EvonasError(self._no_actor_message())

    def _on_started(self, ref: Any) -> None:
        """An actor's start finished: it takes jobs now, or it is dropped (a user error is raised)."""
        actor = self._starting.pop(ref)
        actor.start_ref = None
        try:
            info = ray.get(ref)
        except RayTaskError as exc:
            if isinstance(exc.cause, USER_ERRORS):
                raise exc.cause from None
            raise
        except RayError:  # the actor died while starting (its node left, a crash): try another later
            self._start_deaths += 1
            self._retire(actor)
            if self._start_deaths > MAX_START_DEATHS:
                raise EvonasError(f"{self._start_deaths} Ray actors died while starting; see the Ray logs "
                                  "(out of memory? evonas missing on a node?)") from None
            return
        self._start_deaths = 0
        self._last_started = time.monotonic()
        actor.info, actor.node_id, actor.node = info, info["node_id"], node_label(info["ip"], info["node_id"])
        if info["warning"]:
            warnings.warn(info["warning"], RuntimeWarning, stacklevel=2)
        self._free.extend([actor] * self._depth)

    def _retire(self, actor: _Actor) -> None:
        """Stop using ``actor``; the jobs it still holds go back to the front of the queue without
        using up a try (a job being settled was already taken out)."""
        actor.alive = False
        if actor in self._actors:
            self._actors.remove(actor)
        self._starting.pop(actor.start_ref, None)
        for ref in reversed(actor.calls):
            self._requeue(self._inflight.pop(ref)[1])
        actor.calls.clear()
        ray.kill(actor.handle, no_restart=True)
        self._next_scan = 0.0  # look for a replacement now

    def _target(self, cpus: float, gpus: float) -> int:
        """Actors the live nodes can hold, within ``--workers``."""
        slots = int(cpus + 1e-9)
        if self._gpus > 0:
            slots = min(slots, int(gpus / self._gpus + 1e-9))
        return slots if self._cap is None else min(slots, self._cap)

    def _rescan(self) -> None:
        """Follow the cluster: drop actors of nodes that left, start actors on new room, give up
        on actors that cannot be placed."""
        self._next_scan = time.monotonic() + RESCAN_S
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        alive = {n["NodeID"] for n in nodes}
        for actor in [a for a in self._actors if a.start_ref is None and a.node_id not in alive]:
            self._retire(actor)
        cpus = sum(n["Resources"].get("CPU", 0.0) for n in nodes)
        gpus = sum(n["Resources"].get("GPU", 0.0) for n in nodes)
        surplus = len(self._actors) - self._target(cpus, gpus)
        for _ in range(-surplus):
            self._spawn()
        # too many for the cluster now: drop actors still waiting for a place (newest first), then idle ones
        idle = [a for a in reversed(self._actors) if a.start_ref is not None] + \
               [a for a in reversed(self._actors) if a.start_ref is None and not a.calls]
        for actor in idle[:max(0, surplus)]:
            self._retire(actor)

    def _no_actor_message(self) -> str:
        res = ray.available_resources()
        return (f"no Ray scoring actor could start within {self._start_timeout:g} s (each needs 1 CPU"
                f"{f' and {self._gpus:g} GPU' if self._gpus else ''}; the cluster has {res.get('CPU', 0):g} CPU and "
                f"{res.get('GPU', 0):g} GPU free): add nodes or lower --workers / --gpus-per-worker")

    # ---- jobs -----------------------------------------------------------------------
    def submit(self, job_id: int, genotype: str) -> None:
        """Queue a job; it goes out at the next ``wait``, with the others submitted meanwhile."""
        self._queue.append(Job(job_id, genotype))

    def _requeue(self, jobs: list[Job], alone: bool = False) -> None:
        """Put jobs back at the front of the queue, in order, without using up a try."""
        for job in reversed(jobs):
            job.attempts -= 1
            job.alone = job.alone or alone
            self._queue.appendleft(job)

    def _dispatch(self) -> None:
        """Send queued jobs to free call slots, spread evenly, up to ``jobs_per_call`` per call.

        A job marked ``alone`` (a suspect: its worker died with several jobs on it) goes to an
        idle actor and nothing else goes to that actor until it is back, so a death then names
        its culprit; other jobs wait behind it until an actor is idle.
        """
        while self._queue and self._free:
            if self._queue[0].alone:
                actor = next((a for a in self._free if a.alive and not a.calls), None)
                if actor is None:
                    return
                self._free = deque(a for a in self._free if a is not actor)
                actor.alone = True
                self._send(actor, [self._queue.popleft()])
                continue
            actor = self._free.popleft()
            if not actor.alive:
                continue
            share = min(self._batch, -(-len(self._queue) // (len(self._free) + 1)))
            jobs = [self._queue.popleft()]
            while len(jobs) < share and self._queue and not self._queue[0].alone:
                jobs.append(self._queue.popleft())
            self._send(actor, jobs)

    def _send(self, actor: _Actor, jobs: list[Job]) -> None:
        for job in jobs:
            job.attempts += 1
        ref = actor.handle.run.remote([(job.job_id, job.genotype) for job in jobs])
        actor.calls.append(ref)
        self._inflight[ref] = (actor, jobs)

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        deadline = None if timeout is None else time.monotonic() + timeout
        results: list[JobResult] = []
        self._dispatch()
        while not results and (self._queue or self._inflight):
            if time.monotonic() >= self._next_scan:
                self._rescan()
                self._dispatch()
            if self.started:
                self._last_started = time.monotonic()
            elif time.monotonic() - self._last_started > self._start_timeout:
                raise EvonasError(self._no_actor_message())
            step = RESCAN_S if deadline is None else min(RESCAN_S, max(0.0, deadline - time.monotonic()))
            refs = [*self._inflight, *self._starting]
            if refs:
                ready, _ = ray.wait(refs, num_returns=1, timeout=step)
                if ready:
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            else:  # nothing placed yet: wait for the next look at the cluster
                time.sleep(step)
                ready = []
            for ref in ready:
                if ref in self._starting:
                    self._on_started(ref)
            done = [ref for ref in ready if ref in self._inflight]  # not those of actors retired meanwhile
            if done:
                results.extend(self._collect(done))
            self._dispatch()
            if deadline is not None and time.monotonic() >= deadline:
                break
        return results

    def _collect(self, refs: list[Any]) -> list[JobResult]:
        """Results of finished calls, fetched in one ``ray.get`` unless one of them failed."""
        try:
            outcomes: list[list[Attempt] | RayError] = ray.get(refs)
        except RayError:
            outcomes = [self._fetch(ref) for ref in refs]
        return [result for ref, outcome in zip(refs, outcomes) for result in self._settle(ref, outcome)]

    @staticmethod
    def _fetch(ref: Any) -> list[Attempt] | RayError:
        try:
            return ray.get(ref)
        except RayError as exc:
            return exc

    def _settle(self, ref: Any, outcome: list[Attempt] | RayError) -> list[JobResult]:
        """The call's results; jobs that deserve another try go back to the queue."""
        if ref not in self._inflight:  # its actor died with an earlier call of this batch: already queued
            return []
        actor, jobs = self._inflight[ref]
        if isinstance(outcome, RayError) and not isinstance(outcome, RayTaskError):
            return self._died(actor, outcome)
        del self._inflight[ref]
        actor.calls.remove(ref)
        self._free.extend([actor] * (self._depth if actor.alone else 1))  # an actor back from a suspect is all free
        actor.alone = False
        if isinstance(outcome, RayTaskError):  # the call itself raised; the actor is fine
            error = f"{type(outcome.cause).__name__}: {outcome.cause}"
            outcome = [Attempt("failed", None, error, 0.0, raised=True)] * len(jobs)
        results, retries = [], []
        for job, attempt in zip(jobs, outcome):
            result = settle(job, attempt, actor.label)
            if result is None:
                retries.append(job)
            else:
                results.append(result)
        self._queue.extendleft(reversed(retries))
        return results

    def _died(self, actor: _Actor, error: RayError) -> list[JobResult]:
        """The actor died (crash, kill, out of memory, its node left).

        Calls whose results arrived are settled as usual. Which of the others it died on cannot
        be told (a result sent just before dying may be lost), so a try is counted only when one
        job was left on it; several jobs left are each sent again alone without using up a try,
        so that only a job that kills a worker on its own pays. Nothing pays when the node left.
        """
        results: list[JobResult] = []
        for ref in list(actor.calls):
            finished, _ = ray.wait([ref], timeout=0)
            outcome = self._fetch(ref) if finished else error
            if not isinstance(outcome, RayError) or isinstance(outcome, RayTaskError):
                results.extend(self._settle(ref, outcome))
        jobs = [job for ref in actor.calls for job in self._inflight.pop(ref)[1]]
        actor.calls.clear()
        self._retire(actor)
        if actor.node_id not in {n["NodeID"] for n in ray.nodes() if n.get("Alive")}:
            self._requeue(jobs)
        elif len(jobs) > 1:
            self._requeue(jobs, alone=True)
        else:
            reason = (str(error).strip() or type(error).__name__).splitlines()[0]
            attempt = Attempt("failed", None, f"worker {actor.label} died: {reason}", 0.0, raised=True)
            result = settle(jobs[0], attempt, actor.label)
            if result is None:
                self._queue.appendleft(jobs[0])
            else:
                results.append(result)
        return results

    def pending(self) -> int:
        return len(self._queue) + len(self._inflight)

    def close(self) -> None:
        """Stop the actors; shut Ray down only if this executor started or joined it."""
        self._queue.clear()
        self._inflight.clear()
        self._starting.clear()
        self._free.clear()
        if ray.is_initialized():
            for actor in self._actors:
                ray.kill(actor.handle, no_restart=True)
        self._actors = []
        self._dataset_ref = None
        self._session.close()
