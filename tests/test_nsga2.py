"""NSGA-II: selection and truncation on hand-made points, the front, hypervolume, resume equality."""
from __future__ import annotations

import json
import random

import pytest

import search_spaces
from cli_helpers import run_cli
from evonas.runs import Tally
from evonas.searching import resume_search, start_search
from evonas.searching.nsga2 import NSGA2, key_digest
from evonas.fronts import hypervolume
from evonas.settings import SearchSettings
from search_fakes import ShuffledExecutor, history_lines, kill_search_when, local_fake

CFG = SearchSettings(space="nb201", budget=40, population=6, sample=2, seed=1, checkpoint_every=5, checkpoint_seconds=0,
                     objectives=("synflow", "params"))



@pytest.fixture()
def space():
    return search_spaces.get("nb201")



def _tell(evo: NSGA2, points: list[tuple[float, float]], start: int = 0) -> None:
    """Tell distinct random cells with hand-made (score, params) points."""
    for i, (score, params) in enumerate(points, start):
        p = evo.propose()
        evo.tell(i, p.genotype, f"cell{i}", score, {"params": params})


def test_truncation_keeps_the_front_then_the_least_crowded(space):
    evo = NSGA2(space, population_size=4, sample_size=2, seed=0, cost_objectives=("params",))
    _tell(evo, [(10, 10), (8, 5), (5, 2), (1, 1)])  # A B C D: one front
    assert evo.evolving and [m.rank for m in evo.population] == [0, 0, 0, 0]
    _tell(evo, [(4, 6)], start=4)  # E is dominated by B: it goes, whatever its age
    assert [m.eval_id for m in evo.population] == [0, 1, 2, 3]
    # F joins the front; crowding (score range 9, params range 9): F 0.39, B 0.50, C 0.61, A and D infinite
    _tell(evo, [(9, 7)], start=5)
    assert [m.eval_id for m in evo.population] == [0, 1, 2, 3]
    _tell(evo, [(9.5, 3)], start=6)  # G dominates B (8, 5) and F's spot: B drops to rank 1 and is cut
    assert sorted(m.eval_id for m in evo.population) == [0, 2, 3, 6]


def test_parent_is_the_best_of_the_sample_by_rank_then_crowding(space):
    evo = NSGA2(space, population_size=6, sample_size=3, seed=4, cost_objectives=("params",))
    _tell(evo, [(10, 10), (8, 5), (5, 2), (1, 1), (4, 6), (2, 8)])
    assert sorted(m.rank for m in evo.population) == [0, 0, 0, 0, 1, 2]
    for _ in range(30):
        mirror = random.Random()
        mirror.setstate(evo.rng.getstate())
        drawn = mirror.sample(list(evo.population), 3)
        expected = min(drawn, key=lambda m: (m.rank, -m.fitness.crowding_dist))
        assert evo.select() is expected


def test_a_cell_already_in_the_population_does_not_join_twice(space):
    evo = NSGA2(space, population_size=3, sample_size=2, seed=0, cost_objectives=("params",))
    p = evo.propose()
    assert evo.tell(0, p.genotype, "k", 1.0, {"params": 1.0}) is not None
    assert evo.tell(1, p.genotype, "k", 1.0, {"params": 1.0}) is None and len(evo.population) == 1 and evo.told == 2


def test_proposals_skip_cells_told_or_in_flight(space):
    """A repeat would be rejected from the population anyway, so it is re-drawn, never proposed."""
    evo = NSGA2(space, population_size=4, sample_size=2, seed=3, cost_objectives=("params",))
    told = []
    for i in range(60):
        p = evo.propose()
        assert p.key not in told
        told.append(p.key)
        if i % 3 == 0:  # every third stays in flight for a while: it must not be proposed meanwhile
            continue
        evo.tell(i, p.genotype, p.key, float(i % 7), {"params": float(i % 5)})
    assert len(set(told)) == len(told)
    state = evo.state_dict()
    assert len(state["told_keys"]) == 40  # digests of what was told; the in-flight ones are not persisted
    again = NSGA2(space, population_size=4, sample_size=2, seed=3, cost_objectives=("params",))
    again.load_state_dict(state)
    assert again.told_keys == evo.told_keys and not again.in_flight


def test_a_nearly_exhausted_space_still_gets_a_proposal(space):
    """When re-draws and the walk find nothing new, the repeat is proposed rather than none."""
    evo = NSGA2(space, population_size=2, sample_size=2, seed=0, cost_objectives=("params",))
    for i in range(2):
        p = evo.propose()
        evo.tell(i, p.genotype, p.key, float(i), {"params": float(i)})
    evo._repeats = lambda proposal: True  # every cell counts as seen
    p = evo.propose()
    assert p.key == space.str_key(p.genotype) and key_digest(p.key) in evo.in_flight


def test_nsga2_search_spends_its_budget_on_distinct_cells(tmp_path):
    settings = SearchSettings(space="nb201", budget=150, population=6, sample=2, seed=2, checkpoint_every=50,
                              checkpoint_seconds=0, objectives=("synflow", "params"))
    keys = [r["key"] for r in history_lines(start_search(settings, run_dir=tmp_path / "r", executor_factory=local_fake))]
    assert len(keys) == 150 and len(set(keys)) == 150


def test_front_extraction_from_history_records():
    tally = Tally(True, ("params",))
    rows = [(0, "a", 10, 10), (1, "b", 8, 5), (2, "c", 4, 6), (3, "d", 5, 2), (4, "e", 5, 2), (5, "c", 9, 6)]
    for i, key, score, params in rows:
        tally.add({"id": i, "genotype": key, "key": key, "score": score, "status": "ok", "costs": {"params": params}})
    tally.add({"id": 6, "genotype": "x", "key": "x", "score": None, "status": "infeasible", "costs": {"params": 0.1}})
    # c was dominated by b until it scored 9 at cost 6: then it dominates nobody but joins; d and e tie
    assert [(r["key"], r["score"]) for r in tally.front()] == [("d", 5), ("e", 5), ("b", 8), ("c", 9), ("a", 10)]
    lower = Tally(False, ("params",))
    for i, key, score, params in rows[:4]:
        lower.add({"id": i, "genotype": key, "key": key, "score": score, "status": "ok", "costs": {"params": params}})
    # lower scores are better: d (5 at 2) beats a and b; c (4 at 6) has the lowest score
    assert [r["key"] for r in lower.front()] == ["d", "c"]


def test_hypervolume_of_known_sets():
    assert hypervolume([(1, 3), (2, 2), (3, 1)], (4, 4)) == pytest.approx(6.0)
    assert hypervolume([(1, 3), (2, 2), (3, 1), (3, 3), (5, 0)], (4, 4)) == pytest.approx(6.0)  # dominated/outside
    assert hypervolume([(0, 0, 0)], (1, 2, 3)) == pytest.approx(6.0)
    # three 2x1x1 boxes, pairwise overlapping in the unit cube [1, 2]^3 they all share: 3*2 - 3*1 + 1
    assert hypervolume([(0, 1, 1), (1, 0, 1), (1, 1, 0)], (2, 2, 2)) == pytest.approx(4.0)
    assert hypervolume([], (1, 1)) == 0.0


def test_nsga2_search_records_a_front_its_plot_and_hypervolume(tmp_path, monkeypatch, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = start_search(CFG, run_dir=tmp_path / "r", executor_factory=local_fake)
    again = start_search(CFG, run_dir=tmp_path / "r2", executor_factory=local_fake)
    strip = lambda hist: [{k: v for k, v in r.items() if k not in ("t", "seconds")} for r in hist]  # noqa: E731
    assert strip(history_lines(run)) == strip(history_lines(again))  # seeded
    best = json.loads((run / "best.json").read_text())
    front = best["front"]
    assert front and best["front_objectives"] == ["params"]
    scored = {r["key"]: r for r in history_lines(run) if r["status"] == "ok"}
    for cell in front:  # nothing evaluated beats a front cell in both objectives
        assert not any(r["score"] >= cell["score"] and r["costs"]["params"] <= cell["costs"]["params"]
                       and (r["score"], r["costs"]["params"]) != (cell["score"], cell["costs"]["params"])
                       for r in scored.values())
    assert (run / "front.png").stat().st_size > 1000
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    hv = [e.value for e in acc.Scalars("front/hypervolume")]
    assert hv and all(b >= a - 1e-9 for a, b in zip(hv, hv[1:]))  # the front only improves
    code, out, _ = run_cli(monkeypatch, capsys, "show", str(run))
    assert code == 0 and "Pareto front" in out and "nsga2 over synflow,params" in out


def test_resume_after_a_kill_restores_the_population_exactly(tmp_path, space):
    """Checkpoint + the lines after it rebuild the state a run that never died would hold."""
    run_dir = tmp_path / "r"
    checkpoint, before = kill_search_when(CFG, run_dir, lambda history: len(history) == 23)
    assert checkpoint["evaluations"] == 20

    def fresh() -> NSGA2:
        return NSGA2(space, 6, 2, 1, ("params",), higher_is_better=True)

    restored = fresh()
    restored.load_state_dict(checkpoint["evolution"])
    for r in before[20:]:
        restored.tell(r["id"], r["genotype"], r["key"], r["score"], r["costs"])
    never_died = fresh()
    for r in before:
        never_died.tell(r["id"], r["genotype"], r["key"], r["score"], r["costs"])
    a, b = restored.state_dict(), never_died.state_dict()
    for state in (a, b):  # the RNG is reseeded on resume; the logbook holds one entry per checkpoint written
        state.pop("rng"), state.pop("logbook")
    assert a == b
    assert [m.rank for m in restored.population] == [m.rank for m in never_died.population]

    resume_search(run_dir, executor_factory=lambda s, c: ShuffledExecutor(s, num_workers=3, seed=3))
    after = history_lines(run_dir)
    assert after[:23] == before and len(after) == 40 and len({r["id"] for r in after}) == 40
    assert json.loads((run_dir / "best.json").read_text())["complete"]


def test_train_selection_by_front_and_by_cost_bounds(tmp_path):
    from evonas.errors import EvonasError
    from evonas.training import front_genotypes, pick_genotype, top_genotypes

    run = start_search(CFG, run_dir=tmp_path / "r", executor_factory=local_fake)
    front = json.loads((run / "best.json").read_text())["front"]
    assert [c["genotype"] for c in front_genotypes(run)] == [c["genotype"] for c in front]
    [picked] = pick_genotype(run, "params<=0.3M")
    within = [r for r in history_lines(run) if r["status"] == "ok" and r["costs"]["params"] <= 0.3]
    assert picked["score"] == max(r["score"] for r in within)
    with pytest.raises(EvonasError, match="--pick takes bounds"):
        pick_genotype(run, "size<=1M")
    with pytest.raises(EvonasError, match="--pick takes a count"):
        pick_genotype(run, "params<=300ms")
    with pytest.raises(EvonasError, match="satisfies"):
        pick_genotype(run, "params<1K")
    # a single-objective run has no front, but its cells' params are computed for --pick
    aging = start_search(SearchSettings(space="nb201", estimator="params", budget=12, population=4, sample=2),
                         run_dir=tmp_path / "a", executor_factory=local_fake)
    with pytest.raises(EvonasError, match="no front"):
        front_genotypes(aging)
    [best_small] = pick_genotype(aging, "params<=10M")
    assert best_small["genotype"] == top_genotypes(aging, 1)[0]["genotype"]
