"""Executors: the in-process executor, pool planning, address checks, and a local Ray pool.

The Ray tests share one local Ray session (started by the module's pool) because starting
Ray is slow; they score real NB-201 genotypes on synthetic data with a tiny network.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time

import pytest

from estimators.base import Estimator
from evonas.errors import EvonasError
from evonas.execution import MAX_ATTEMPTS, LocalExecutor, RayExecutor, make_executor, plan_pool
from evonas.scoring import Scorer
from evonas.settings import ScoringSettings
from executor_helpers import CONFIG, drain, free_port, genotypes

DIE_ALWAYS = "die-always"
DIE_ONCE = "die-once:"
SLEEP = "sleep:"


class CountingScorer(Scorer):
    """The real scorer, counting how often it is asked (to see retries)."""

    def __init__(self, config: ScoringSettings, device: str = "cpu") -> None:
        super().__init__(config, device=device)
        self.calls = 0

    def score(self, genotype: str, eval_id: int = 0):
        self.calls += 1
        return super().score(genotype, eval_id)


class NaNEstimator(Estimator):
    name = "nan"

    def score(self, model, batches, depth_units=None) -> float:
        return math.nan


class ScriptedScorer(Scorer):
    """The real scorer, except that some job strings script the worker's behaviour.

    ``die-always`` exits the worker process every time; ``die-once:MARKER;GENOTYPE`` exits
    the first time (leaving MARKER behind) and scores GENOTYPE on the next try;
    ``sleep:SECONDS;GENOTYPE`` sleeps first.
    """

    def score(self, genotype: str, eval_id: int = 0):
        if genotype == DIE_ALWAYS:
            os._exit(3)
        if genotype.startswith(DIE_ONCE):
            marker, _, genotype = genotype[len(DIE_ONCE):].partition(";")
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(3)
        if genotype.startswith(SLEEP):
            seconds, _, genotype = genotype[len(SLEEP):].partition(";")
            time.sleep(float(seconds))
        return super().score(genotype, eval_id)


def expected(genotype: str, eval_id: int):
    return Scorer(CONFIG).score(genotype, eval_id=eval_id)


# ---------------------------------------------------------------- in-process executor


def test_local_executor_returns_one_scored_result_per_wait_in_order():
    gens = genotypes(4)
    with make_executor(CONFIG) as executor:
        assert isinstance(executor, LocalExecutor) and executor.num_workers == 1
        for job_id, genotype in enumerate(gens):
            executor.submit(job_id, genotype)
        assert executor.pending() == 4
        for job_id, genotype in enumerate(gens):
            (result,) = executor.wait()
            truth = expected(genotype, job_id)
            assert (result.job_id, result.genotype, result.status, result.attempts) == (job_id, genotype, "ok", 1)
            assert result.score == truth.score and result.key == truth.extra["key"]
            assert result.worker == "local" and result.error is None and result.seconds > 0
            assert executor.pending() == 3 - job_id
        assert executor.wait() == []


def test_local_executor_retries_a_raising_job_once_then_reports_it_failed():
    executor = LocalExecutor(CONFIG, scorer_factory=CountingScorer)
    executor.submit(7, "not a genotype")
    (result,) = executor.wait()
    assert result.status == "failed" and result.score is None and result.key is None
    assert result.attempts == MAX_ATTEMPTS == 2 and executor._scorer.calls == 2
    assert result.error.startswith("GenotypeError:")


def test_nan_score_is_a_failed_result_and_not_retried():
    def nan_scorer(config: ScoringSettings, device: str = "cpu") -> CountingScorer:
        scorer = CountingScorer(config, device)
        scorer.estimator = NaNEstimator()
        return scorer

    executor = LocalExecutor(CONFIG, scorer_factory=nan_scorer)
    executor.submit(0, genotypes(1)[0])
    (result,) = executor.wait()
    assert (result.status, result.attempts, executor._scorer.calls) == ("failed", 1, 1)
    assert "non-finite" in result.error and result.key is not None


# ---------------------------------------------------------------- planning and arguments


@pytest.mark.parametrize("cpus", [1, 2, 16])
@pytest.mark.parametrize("gpus", [0, 1, 2])
@pytest.mark.parametrize("workers", [None, 1, 2])
@pytest.mark.parametrize("gpus_per_worker", [None, 0, 0.5, 1])
def test_plan_pool_fits_the_cluster_and_honours_the_flags(workers, gpus_per_worker, cpus, gpus):
    """Properties, not a restated table: the pool fits, the flags are obeyed, idle hardware is used."""
    try:
        actors, share = plan_pool(workers, gpus_per_worker, cpus, gpus)
    except EvonasError:  # only when the request truly cannot fit
        gpw = gpus_per_worker or 0
        assert (workers or 1) > cpus or (gpw > 0 and gpus == 0) or (workers or 1) * gpw > gpus
        return
    assert 1 <= actors <= cpus  # one CPU per actor
    assert actors * share <= gpus + 1e-9
    if workers is not None:
        assert actors == workers
    if gpus_per_worker is not None:
        assert share == gpus_per_worker
    if workers is None and gpus_per_worker is None:
        assert actors == (cpus if gpus == 0 else min(cpus, 4 * gpus))  # 4 actors share a GPU by default
    if gpus_per_worker is None and gpus:
        assert actors * share == pytest.approx(min(gpus, actors), abs=1e-3)  # every GPU (or actor) is busy


@pytest.mark.parametrize(
    "workers, gpus_per_worker, cpus, gpus, message",
    [
        (0, None, 2, 0, "--workers must be at least 1"),
        (3, None, 2, 0, "use --workers 2 or fewer"),
        (None, 0.5, 2, 0, "Ray sees no GPUs"),
        (None, 1.5, 8, 2, "fraction in [0, 1] or a whole number"),
        (4, 0.5, 8, 1, "lower --workers or --gpus-per-worker"),
    ],
)
def test_plan_pool_rejects_impossible_requests(workers, gpus_per_worker, cpus, gpus, message):
    with pytest.raises(EvonasError, match=re.escape(message)):
        plan_pool(workers, gpus_per_worker, cpus, gpus)


def test_unreachable_address_fails_fast_with_one_line_that_says_what_to_do():
    import ray

    port = free_port()
    with pytest.raises(EvonasError) as info:  # from one refused connect, before Ray's minutes of retries
        make_executor(CONFIG, "ray", address=f"127.0.0.1:{port}")
    message = str(info.value)
    assert "\n" not in message and f"127.0.0.1:{port}" in message
    assert f"ray start --head --node-ip-address 127.0.0.1 --port {port}" in message and "drop --address" in message
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "ray", "address": "nohost"}, "is not HOST:PORT"),
        ({"kind": "dask"}, "--executor must be one of local, ray, not 'dask'"),
        ({"kind": "local", "address": "127.0.0.1:6379"}, "need the Ray executor"),
        ({"kind": "local", "workers": 2}, "need the Ray executor"),
    ],
)
def test_make_executor_rejects_bad_arguments(kwargs, message):
    with pytest.raises(EvonasError, match=re.escape(message)):
        make_executor(CONFIG, **kwargs)


# ---------------------------------------------------------------- a local Ray pool


@pytest.fixture(scope="module")
def pool():
    """Two actors on a local Ray that the executor starts itself (and stops in close)."""
    import ray

    # ScriptedScorer lives in this test module, which Ray's workers cannot import: ship it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    assert not ray.is_initialized()
    executor = RayExecutor(CONFIG, workers=2, scorer_factory=ScriptedScorer)
    yield executor
    executor.close()


def test_ray_pool_scores_every_job_like_the_local_scorer_with_worker_ids(pool):
    gens = genotypes(6, seed=1)
    assert pool.started == 2 and pool.num_workers == 2 * pool.jobs_per_actor
    for job_id, genotype in enumerate(gens):
        pool.submit(job_id, genotype)
    assert pool.pending() == 6
    results = drain(pool)
    assert sorted(r.job_id for r in results) == list(range(6))
    for result in results:
        truth = expected(gens[result.job_id], result.job_id)
        assert (result.status, result.attempts, result.score) == ("ok", 1, truth.score)
        assert result.key == truth.extra["key"] and result.seconds > 0
        assert re.fullmatch(r"w\d+@127\.0\.0\.1/[0-9a-f]{8}", result.worker)  # actor and the node it ran on
    assert len({r.worker for r in results}) == 2  # both actors got work


def test_ray_worker_killed_mid_job_is_replaced_and_the_job_completes(pool, tmp_path):
    gens = genotypes(4, seed=2)
    victim = f"{DIE_ONCE}{tmp_path / 'died'};{gens[0]}"
    pool.submit(0, victim)
    for job_id, genotype in enumerate(gens[1:], start=1):
        pool.submit(job_id, genotype)
    before = {actor.name for actor in pool._actors}
    results = {r.job_id: r for r in drain(pool)}
    assert sorted(results) == [0, 1, 2, 3] and all(r.ok for r in results.values())
    assert (tmp_path / "died").exists()  # the worker really did exit mid-job
    # job 1 was queued behind it on the same actor: which of the two killed it cannot be told, so
    # neither pays a try; both run again alone, and the die-once job then completes
    assert results[0].attempts == 1 and results[0].score == expected(gens[0], 0).score
    assert all(results[j].attempts == 1 for j in (1, 2, 3))
    after = {actor.name for actor in pool._actors}  # the replacement may still be starting
    assert len(after) == 2 and len(after - before) == 1  # exactly one actor was replaced


def test_ray_job_that_always_kills_its_worker_is_failed_after_two_attempts(pool):
    good = genotypes(1, seed=3)[0]
    pool.submit(0, DIE_ALWAYS)
    pool.submit(1, good)
    results = {r.job_id: r for r in drain(pool)}
    assert results[0].status == "failed" and results[0].attempts == 2 and results[0].score is None
    assert re.match(r"worker w\d+@127\.0\.0\.1/\w+ died", results[0].error)
    assert results[1].ok and results[1].score == expected(good, 1).score
    pool.submit(2, good)  # the replaced actors keep working
    (after,) = drain(pool)
    assert after.ok and after.attempts == 1


def test_ray_job_that_raises_is_retried_once_then_failed(pool):
    pool.submit(5, "not a genotype")
    (result,) = drain(pool)
    assert (result.job_id, result.status, result.attempts) == (5, "failed", 2)
    assert result.error.startswith("GenotypeError:")


def test_ray_wait_returns_on_timeout_and_when_idle(pool):
    genotype = genotypes(1, seed=4)[0]
    pool.submit(0, f"{SLEEP}3;{genotype}")
    assert pool.wait(timeout=0.2) == [] and pool.pending() == 1  # back before the 3 s job ends
    (result,) = drain(pool)
    assert result.ok and result.seconds >= 3  # time measured inside the worker
    assert pool.pending() == 0 and pool.wait(timeout=0.1) == [] and pool.wait() == []


CLOSE_SCRIPT = """
import os, ray
from evonas.execution import RayExecutor
from executor_helpers import CONFIG, genotypes
executor = RayExecutor(CONFIG, workers=1)
temp_dir = executor._session._temp_dir
executor.submit(0, genotypes(1)[0])
executor.close()
print(ray.is_initialized(), executor.pending(), os.path.exists(temp_dir))
"""


def test_close_stops_the_ray_the_executor_started():
    """In a fresh process, so no other test's Ray session can be the one that is running."""
    env = {**os.environ, "PYTHONPATH": os.path.dirname(__file__)}
    out = subprocess.run([sys.executable, "-c", CLOSE_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "0", "False"]
