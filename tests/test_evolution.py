"""Aging-evolution semantics, on NB-201 cells scored by a cheap deterministic fake."""
from __future__ import annotations

import json
import random
from collections import Counter

import pytest

import search_spaces
from evonas.settings import SearchSettings
from evonas.errors import EvonasError
from evonas.searching.evolution import AgingEvolution
from evonas.searching import driver as search_driver
from evonas.searching import start_search
from search_fakes import FakeScorer, ShuffledExecutor, fake_score, local_fake


@pytest.fixture()
def space():
    return search_spaces.get("nb201")


def _tell_random(evo: AgingEvolution, n: int, start: int = 0, score=None) -> list[int]:
    """Tell ``n`` random cells (scored by fake_score unless ``score`` is given); their ids."""
    ids = []
    for i in range(start, start + n):
        p = evo.propose()
        evo.tell(i, p.genotype, p.key, fake_score(p.key) if score is None else score(i))
        ids.append(i)
    return ids


def _history(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def test_oldest_member_dies_when_full(space):
    evo = AgingEvolution(space, population_size=4, sample_size=2, seed=1)
    _tell_random(evo, 4)
    assert evo.evolving and [m.eval_id for m in evo.population] == [0, 1, 2, 3]
    for i in range(4, 7):
        p = evo.propose()
        assert p.parent is not None  # children now, not random cells
        evo.tell(i, p.genotype, p.key, 0.0)  # even the worst newcomer pushes out the oldest
    assert [m.eval_id for m in evo.population] == [3, 4, 5, 6]


def test_failed_evaluations_never_enter_the_population(space):
    evo = AgingEvolution(space, population_size=3, sample_size=2, seed=0)
    p = evo.propose()
    assert evo.tell(0, p.genotype, p.key, None) is None
    assert len(evo.population) == 0 and evo.told == 1 and not evo.evolving
    _tell_random(evo, 3, start=1)
    assert [m.eval_id for m in evo.population] == [1, 2, 3] and evo.evolving


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_parent_is_best_of_a_random_sample(space, higher_is_better):
    evo = AgingEvolution(space, population_size=10, sample_size=3, seed=5, higher_is_better=higher_is_better)
    _tell_random(evo, 10, score=lambda i: float((i * 7) % 10))  # distinct scores 0..9
    pick = max if higher_is_better else min
    for _ in range(20):
        mirror = random.Random()
        mirror.setstate(evo.rng.getstate())
        drawn = mirror.sample(list(evo.population), 3)
        expected = pick(drawn, key=lambda m: m.score)
        assert evo.select() is expected
    # the sample is not the whole population: the global best is not always chosen
    chosen = Counter(evo.select().score for _ in range(200))
    assert len(chosen) > 1


def test_child_is_one_mutation_of_the_selected_parent(space):
    evo = AgingEvolution(space, population_size=5, sample_size=2, seed=3)
    _tell_random(evo, 5)
    mirror = random.Random()
    mirror.setstate(evo.rng.getstate())
    parent = max(mirror.sample(list(evo.population), 2), key=lambda m: m.score)
    expected_child = space.to_str(space.mutate(space.from_str(parent.genotype), mirror))
    child = evo.propose()
    assert child.parent == parent.eval_id and child.genotype == expected_child
    differing = [a != b for a, b in zip(child.genotype.split("|"), parent.genotype.split("|"))]
    assert sum(differing) == 1


def test_warmup_starts_from_the_best_cells_in_age_order(space):
    evo = AgingEvolution(space, population_size=3, sample_size=2, seed=0, warmup=8)
    scores = [5.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 0.0]
    _tell_random(evo, 8, score=lambda i: scores[i])
    assert evo.evolving
    assert [m.eval_id for m in evo.population] == [2, 4, 6]


def test_hall_of_fame_keeps_one_member_per_canonical_key(space):
    evo = AgingEvolution(space, population_size=2, sample_size=1, seed=0)
    g = space.sample(random.Random(1))
    for i in range(3):
        evo.tell(i, space.to_str(g), space.canonical_key(g), 1.0)
    assert len(evo.hall_of_fame) == 1


def test_state_dict_round_trip_continues_identically(space):
    evo = AgingEvolution(space, population_size=5, sample_size=2, seed=9)
    _tell_random(evo, 12)
    state = json.loads(json.dumps(evo.state_dict()))  # it must survive JSON
    twin = AgingEvolution(space, population_size=5, sample_size=2, seed=0)
    twin.load_state_dict(state)
    assert [m.eval_id for m in twin.population] == [m.eval_id for m in evo.population]
    assert len(twin.logbook) == len(evo.logbook) and twin.best.score == evo.best.score
    for i in range(12, 20):
        a, b = evo.propose(), twin.propose()
        assert a == b
        evo.tell(i, a.genotype, a.key, fake_score(a.key))
        twin.tell(i, b.genotype, b.key, fake_score(b.key))
    with pytest.raises(ValueError, match="population_size"):
        AgingEvolution(space, population_size=6, sample_size=2, seed=0).load_state_dict(state)


def test_budget_respected_and_same_seed_same_history(tmp_path):
    cfg = SearchSettings(space="nb201", estimator="params", budget=40, population=8, sample=3, seed=4)
    runs = [start_search(cfg, run_dir=tmp_path / f"r{i}", executor_factory=local_fake) for i in range(2)]
    a, b = (_history(r) for r in runs)
    assert len(a) == 40 and len({r["id"] for r in a}) == 40
    strip = lambda hist: [{k: v for k, v in r.items() if k not in ("t", "seconds")} for r in hist]  # noqa: E731
    assert strip(a) == strip(b)
    other = _history(start_search(SearchSettings(**{**cfg.to_dict(), "seed": 5}), run_dir=tmp_path / "r3",
                                  executor_factory=local_fake))
    assert [r["genotype"] for r in other] != [r["genotype"] for r in a]
    # the first P evaluations are random cells, every later one a child of an earlier member
    assert all(r["parent"] is None for r in a[:8]) and all(r["parent"] is not None for r in a[8:])
    ids = {r["id"] for r in a}
    assert all(r["parent"] in ids and r["parent"] < r["id"] for r in a[8:])


def test_search_improves_on_random_cells(tmp_path):
    cfg = SearchSettings(space="nb201", estimator="params", budget=120, population=10, sample=4, seed=0)
    hist = _history(start_search(cfg, run_dir=tmp_path / "r", executor_factory=local_fake))
    best = max(r["score"] for r in hist)
    assert best == max(fake_score(r["key"]) for r in hist)
    assert best > max(r["score"] for r in hist[:10])  # evolution beat its random start
    assert best > 55  # fake optimum is ~60.1 (six 3x3 convs); random cells average ~23


def test_asynchronous_loop_keeps_every_worker_busy(tmp_path):
    executors = []

    def factory(scoring, cfg):
        executors.append(ShuffledExecutor(scoring, num_workers=3, seed=1))
        return executors[-1]

    cfg = SearchSettings(space="nb201", estimator="params", budget=30, population=6, sample=2, seed=0)
    hist = _history(start_search(cfg, run_dir=tmp_path / "r", executor_factory=factory))
    ex = executors[0]
    assert len(hist) == 30 and len({r["id"] for r in hist}) == 30
    assert ex.max_pending == 3
    ids = [r["id"] for r in hist]
    assert ids != sorted(ids)  # results were recorded in completion order
    assert len(ex.submitted) == sum(not r["cache_hit"] for r in hist)


def test_nan_scores_are_failed_evaluations_and_the_search_goes_on(tmp_path, space):
    rng = random.Random(12345)  # not the search's seed, so the NaN cells are a random half
    FakeScorer.nan_keys = {space.canonical_key(space.sample(rng)) for _ in range(3000)}
    cfg = SearchSettings(space="nb201", estimator="params", budget=30, population=4, sample=2, seed=0)
    run = start_search(cfg, run_dir=tmp_path / "r", executor_factory=local_fake)
    hist = _history(run)
    failed = [r for r in hist if r["status"] == "failed"]
    assert len(hist) == 30 and failed and len(failed) < 30
    assert all(r["score"] is None and "non-finite" in r["error"] for r in failed)
    state = json.loads((run / "checkpoint.json").read_text())["evolution"]
    assert not {m["key"] for m in state["population"]} & FakeScorer.nan_keys


class FakeClock:
    """Stands in for the driver's ``time`` module: time moves only when a result comes back."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


def test_time_limit_alone_bounds_the_run(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(search_driver, "time", clock)

    class Slow(ShuffledExecutor):
        def wait(self, timeout=None):
            clock.now += 0.02  # each result takes 0.02 s of (fake) time
            return super().wait(timeout)

    cfg = SearchSettings(space="nb201", estimator="params", budget=None, time_limit=0.4, population=3, sample=2)
    run = start_search(cfg, run_dir=tmp_path / "r", executor_factory=lambda s, c: Slow(s, num_workers=2))
    hist = _history(run)
    submitted_in_time = [r for r in hist if r["t"] <= 0.4 + 1e-9]
    assert len(hist) >= 3 and len(submitted_in_time) >= len(hist) - 2  # at most the 2 in-flight jobs finish late
    assert max(r["t"] for r in hist) <= 0.4 + 2 * 0.02 + 1e-9  # nothing submitted after the limit
    assert json.loads((run / "best.json").read_text())["complete"]


def test_warmup_counts_toward_the_budget_and_seeds_the_population(tmp_path):
    cfg = SearchSettings(space="nb201", estimator="params", budget=30, population=4, sample=2, warmup=12, seed=1)
    hist = _history(start_search(cfg, run_dir=tmp_path / "r", executor_factory=local_fake))
    assert len(hist) == 30
    assert all(r["parent"] is None for r in hist[:12]) and all(r["parent"] is not None for r in hist[12:])
    best4 = {r["id"] for r in sorted(hist[:12], key=lambda r: -r["score"])[:4]}
    assert hist[12]["parent"] in best4  # the first child descends from the best P of the warm-up
    with pytest.raises(EvonasError, match="--warmup"):
        start_search(SearchSettings(**{**cfg.to_dict(), "warmup": 31}), run_dir=tmp_path / "x")
