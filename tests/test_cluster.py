"""Several Ray nodes on this machine (``ray.cluster_utils.Cluster``: real raylets on 127.0.0.1).

A node is killed (SIGKILL by pid) mid-search and another joins: the search finishes with
exactly its budget, every result names the node it came from, the pool grows onto the new
node within seconds and never exceeds ``--workers``. The uncapped pool follows the cluster
up and down. A second ``ray start --address`` on this machine cannot join a loopback head (Ray
then rewrites 127.0.0.1 to the machine's outward address), hence ``Cluster``.

All tests share one cluster (a one-CPU head); each adds and removes the nodes it needs.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from functools import partial
from typing import Iterator

import pytest
import ray
import search_fakes
from executor_helpers import CONFIG, drain, genotypes
from ray.cluster_utils import Cluster
from search_fakes import FakeScorer

from evonas.errors import DataError
from evonas.execution import RayExecutor
from evonas.execution.ray_session import RAY_ENV, stay_on_loopback
from evonas.runs import RunRecord
from evonas.scoring import Scorer
from evonas.searching import start_search
from evonas.settings import ScoringSettings, SearchSettings

pytestmark = pytest.mark.timeout(240)
FAKE = ScoringSettings(space="nb201", estimator="params", dataset="synthetic")
LOOPBACK = {"node_ip_address": "127.0.0.1"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A one-CPU head on 127.0.0.1 with fast node-death detection; the driver connected to it."""
    temp_dir = tempfile.mkdtemp(prefix="evc-")  # short: Ray's socket paths must fit
    saved = {k: os.environ.get(k) for k in (*RAY_ENV, "RAY_TMPDIR")}
    os.environ["RAY_TMPDIR"] = temp_dir  # Ray's files, the cluster address file included, stay ours
    stay_on_loopback()
    for module in (search_fakes, sys.modules[__name__]):  # actors cannot import the tests folder
        ray.cloudpickle.register_pickle_by_value(module)
    head = Cluster(initialize_head=True, head_node_args={
        **LOOPBACK, "num_cpus": 1, "include_dashboard": False,
        # a SIGKILLed node is declared dead after ~1.5 s instead of Ray's default ~15 s
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
    })
    try:
        ray.init(address=head.address, _node_ip_address="127.0.0.1", logging_level=logging.WARNING,
                 log_to_driver=False)
        yield head
    finally:
        ray.shutdown()
        head.shutdown()  # stops exactly the processes of the nodes it started, by pid
        for module in (search_fakes, sys.modules[__name__]):
            ray.cloudpickle.unregister_pickle_by_value(module)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(temp_dir, ignore_errors=True)


class KillingScorer(FakeScorer):
    """The fake scorer, except that the job ``die`` exits the worker process."""

    def score(self, genotype: str, eval_id: int = 0):
        if genotype == "die":
            os._exit(3)
        return super().score(genotype, eval_id)


def _node(worker: str) -> str:
    """The node id prefix in a history ``worker`` field (``w3@127.0.0.1/1a2b3c4d``)."""
    name, _, where = worker.partition("@")
    ip, _, node_id = where.partition("/")
    assert name.startswith("w") and ip == "127.0.0.1" and len(node_id) == 8, worker
    return node_id


def test_search_survives_a_killed_node_and_grows_onto_a_joining_one(cluster, tmp_path):
    settings = SearchSettings(space="nb201", estimator="params", dataset="synthetic", budget=100, population=10,
                              sample=3, seed=4, checkpoint_every=10, checkpoint_seconds=0, workers=2)
    node_b = cluster.add_node(**LOOPBACK, num_cpus=1, resources={"node_b": 1})
    pools: list[RayExecutor] = []
    events: dict[str, object] = {"most_actors": 0}

    def factory(scoring, config):
        pools.append(RayExecutor(scoring, workers=2, scorer_factory=partial(FakeScorer, delay=0.1)))
        return pools[-1]

    def progress(p):
        pool = pools[-1]
        events["most_actors"] = max(events["most_actors"], pool.actors)
        began = time.monotonic()
        if p.evaluations == 15:
            events["placement"] = {n: info["node"] for n, info in pool.placement().items()}
            cluster.remove_node(node_b, allow_graceful=False)  # SIGKILL to every process of the node
            events["killed_t"] = p.elapsed + time.monotonic() - began
        elif p.evaluations == 30:
            events["node_c"] = cluster.add_node(**LOOPBACK, num_cpus=2, resources={"node_c": 1})
            events["joined_t"] = p.elapsed + time.monotonic() - began
        elif 30 < p.evaluations < settings.budget - 20 and "node_c" in events:
            # On a loaded machine an actor may take many seconds to start: slow the driver (not the pool,
            # which rescans between results) until node_c has one, so the budget cannot run out first.
            where = {info["node"] for info in pool.placement().values()}
            if f"127.0.0.1/{events['node_c'].node_id[:8]}" not in where:
                time.sleep(0.25)

    try:
        run = start_search(settings, run_dir=tmp_path / "r", executor_factory=factory, progress=progress)
    finally:
        if "node_c" in events:
            cluster.remove_node(events["node_c"])
    history = RunRecord.open(run).read_history()
    ids = [r["id"] for r in history]
    assert len(history) == 100 and len(set(ids)) == 100  # exactly the budget, nothing lost or repeated
    assert all(r["status"] == "ok" for r in history)  # a lost node costs its jobs no try
    head_id, b_id, c_id = (n.node_id[:8] for n in (cluster.head_node, node_b, events["node_c"]))
    assert set(events["placement"].values()) == {f"127.0.0.1/{head_id}", f"127.0.0.1/{b_id}"}  # one actor per node
    scored = [r for r in history if not r["cache_hit"]]
    where = Counter(_node(r["worker"]) for r in scored)
    assert where[head_id] and where[b_id] and where[c_id]
    assert set(where) == {head_id, b_id, c_id}
    last_b = max(r["t"] for r in scored if _node(r["worker"]) == b_id)
    first_c = min(r["t"] for r in scored if _node(r["worker"]) == c_id)
    assert last_b <= events["killed_t"] + 1.0  # nothing came back from the dead node afterwards
    assert events["most_actors"] <= 2  # never more than --workers, though 3 CPUs were there at the end
    resumed = min(r["t"] for r in scored if r["t"] > events["killed_t"])
    print(f"\nplacement before the kill: {events['placement']}; evaluations per node: {dict(where)}; "
          f"first result {resumed - events['killed_t']:.2f} s after the kill; "
          f"node_c's first result {first_c - events['joined_t']:.1f} s after it joined")


def _keep_busy(pool: RayExecutor, until, timeout: float = 60.0) -> float:
    """Feed ``pool`` jobs until ``until()`` holds; seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    gens = genotypes(8, seed=9)
    job = 0
    while not until():
        assert time.monotonic() - start < timeout, f"pool did not adapt within {timeout:g} s: {pool.placement()}"
        while pool.pending() < pool.num_workers:
            pool.submit(job, gens[job % len(gens)])
            job += 1
        pool.wait(timeout=0.5)
    drain(pool)
    return time.monotonic() - start


def test_uncapped_pool_grows_when_a_node_joins_and_shrinks_when_it_leaves(cluster):
    pool = RayExecutor(FAKE, scorer_factory=partial(FakeScorer, delay=0.05))
    try:
        assert pool.started == 1  # the head's one CPU
        node_d = cluster.add_node(**LOOPBACK, num_cpus=2, resources={"node_d": 1})
        label = f"127.0.0.1/{node_d.node_id[:8]}"
        grow_s = _keep_busy(pool, lambda: [i["node"] for i in pool.placement().values()].count(label) == 2)
        assert pool.started == 3 and pool.num_workers == 3 * pool.jobs_per_actor
        cluster.remove_node(node_d, allow_graceful=False)
        shrink_s = _keep_busy(pool, lambda: pool.actors == 1)
        assert pool.started == 1
        print(f"\npool 1 -> 3 actors {grow_s:.1f} s after a 2-CPU node joined; 3 -> 1 {shrink_s:.1f} s after it died")
    finally:
        pool.close()
    assert ray.is_initialized()  # the pool joined a running Ray and leaves it running


def test_missing_data_names_the_node_and_ship_data_carries_it(cluster, tmp_path):
    missing = ScoringSettings(space="nb201", estimator="params", dataset="cifar10", data_dir=str(tmp_path))
    with pytest.raises(DataError) as info:
        RayExecutor(missing)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"on Ray node 127.0.0.1/{cluster.head_node.node_id[:8]}: ")

    def shipped_only(config, device="cpu", dataset=None):
        assert dataset is not None, "the actor was meant to score from the shipped dataset"
        return Scorer(config, dataset=dataset, device=device)

    gens = genotypes(3, seed=6)
    with RayExecutor(CONFIG, ship_data=True, scorer_factory=shipped_only) as pool:
        for job, genotype in enumerate(gens):
            pool.submit(job, genotype)
        seen = sorted(drain(pool), key=lambda r: r.job_id)
    assert [r.score for r in seen] == [Scorer(CONFIG).score(g, eval_id=i).score for i, g in enumerate(gens)]


def test_batched_calls_carry_several_jobs_and_a_killing_job_pays_alone(cluster):
    gens = genotypes(7, seed=8)
    scorer = partial(KillingScorer, delay=0.1)
    with RayExecutor(FAKE, calls_per_actor=2, jobs_per_call=4, scorer_factory=scorer) as pool:
        assert pool.started == 1 and pool.num_workers == 8  # the head's one actor, 2 calls x 4 jobs
        for job, genotype in enumerate([gens[0], "die", *gens[1:]]):
            pool.submit(job, genotype)
        assert pool.wait(timeout=0) == []  # sends the queued jobs; none can be back yet
        assert sorted(len(jobs) for _, jobs in pool._inflight.values()) == [4, 4]
        results = {r.job_id: r for r in drain(pool)}
    assert sorted(results) == list(range(8))
    assert results[1].status == "failed" and results[1].attempts == 2 and "died" in results[1].error
    paid = [(j, r.status, r.attempts, r.error) for j, r in results.items() if j != 1 and not (r.ok and r.attempts == 1)]
    assert not paid  # batch-mates paid nothing
