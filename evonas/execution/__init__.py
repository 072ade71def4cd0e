"""Execution: where genotype strings become scores (in process, or on a pool of Ray actors)."""
from __future__ import annotations

from evonas.data import ImageDataset
from evonas.execution.base import MAX_ATTEMPTS, Executor, JobResult, ScorerFactory
from evonas.execution.local import LocalExecutor
from evonas.execution.ray_pool import RayExecutor, ScoreWorker, plan_pool
from evonas.execution.ray_session import RaySession, check_reachable
from evonas.scoring import Scorer
from evonas.settings import ScoringSettings, check_executor


def make_executor(
    config: ScoringSettings,
    kind: str = "local",
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    address: str | None = None,
    ray_temp_dir: str | None = None,
    dataset: ImageDataset | None = None,
    ship_data: bool = False,
    jobs_per_call: int = 1,
) -> Executor:
    """The executor the flags ask for; in process it shares ``dataset`` when the caller has it loaded.

    ``ship_data`` (Ray only): the driver loads the dataset and Ray's object store carries it
    to every node, for clusters whose nodes do not all hold ``data_dir``. ``jobs_per_call``
    (Ray only): jobs per actor call, for evaluations so short that Ray's per-call cost shows.
    """
    check_executor(kind, workers, gpus_per_worker, address)
    if kind == "local":
        return LocalExecutor(config, scorer_factory=lambda cfg, device: Scorer(cfg, dataset=dataset, device=device))
    return RayExecutor(config, workers, gpus_per_worker, address, ray_temp_dir, ship_data=ship_data,
                       jobs_per_call=jobs_per_call)


__all__ = [
    "MAX_ATTEMPTS", "Executor", "JobResult", "LocalExecutor", "RayExecutor", "RaySession", "ScoreWorker",
    "ScorerFactory", "check_reachable", "make_executor", "plan_pool",
]
