"""Search strategies: the registry, random search, a plug-in strategy, and exact kill -9 resume for each."""
from __future__ import annotations

import inspect
import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import search_spaces
from cli_helpers import assert_one_line_error, run_cli
from evonas.errors import EvonasError
from evonas.searching import registry, resolve_settings, resume_search
from evonas.searching.checkpoint import replay
from evonas.searching.random_search import RandomSearch
from evonas.searching.strategy import Candidate, Proposal, Strategy, StrategyContext
from evonas.settings import SearchSettings
from search_fakes import ShuffledExecutor, history_lines, kill_search_when

ROOT = Path(__file__).resolve().parents[1]
CFG = SearchSettings(space="nb201", estimator="params", budget=40, population=6, sample=2, seed=1, checkpoint_every=5,
                     checkpoint_seconds=0)
TINY = ["--dataset", "synthetic", "--estimator", "params", "--space", "nb201"]


class HillClimb(Strategy):
    """First-improvement hill climbing: one mutation of the best cell so far (random cells until one scores)."""

    name = "hill_climb"
    description = "hill climbing from the best cell so far"
    uses_population = False

    def __init__(self, context: StrategyContext) -> None:
        super().__init__(context)
        self.rng = random.Random(context.seed)
        self.incumbent: Candidate | None = None

    def propose(self) -> Proposal:
        space = self.context.space
        if self.incumbent is None:
            graph = space.sample(self.rng)
            return Proposal(space.to_str(graph), space.canonical_key(graph))
        child = space.mutate_str(self.incumbent.genotype, self.rng)
        return Proposal(child, space.str_key(child), self.incumbent.eval_id)

    def tell(self, eval_id, genotype, key, score, costs=None):
        if score is None:
            return None
        better = self.incumbent is None or (score > self.incumbent.score if self.higher_is_better
                                            else score < self.incumbent.score)
        if better:
            self.incumbent = Candidate(eval_id, genotype, key, score, costs)
        return self.incumbent if better else None

    @property
    def best(self):
        return self.incumbent

    def reseed(self, seed: int) -> None:
        self.rng.seed(seed)

    def state_dict(self) -> dict:
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss],
                "incumbent": self.incumbent.to_dict() if self.incumbent else None}

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        held = state["incumbent"]
        self.incumbent = held and Candidate(held["id"], held["genotype"], held["key"], held["score"], held.get("costs"))


SETTINGS = {
    "aging": replace(CFG, algorithm="aging"),
    "nsga2": replace(CFG, estimator="synflow", objectives=("synflow", "params"), algorithm="nsga2"),
    "random": replace(CFG, algorithm="random"),
    "hill_climb": replace(CFG, algorithm="hill_climb"),
}


@pytest.fixture()
def space():
    return search_spaces.get("nb201")


def _context(space, **kw: Any) -> StrategyContext:
    return StrategyContext(**{"space": space, "population": 6, "sample": 2, "seed": 0, **kw})


# ---- the registry ---------------------------------------------------------------------
def test_builtin_strategies_are_registered_with_what_they_support():
    found = registry.available()
    assert {"aging", "nsga2", "random"} <= found.keys() and list(found) == sorted(found)
    assert all(found[name].description and registry.origin(name) == "built-in" for name in ("aging", "nsga2", "random"))
    assert found["aging"].accepts(1) and not found["aging"].accepts(2)
    assert found["nsga2"].accepts(3) and not found["nsga2"].accepts(1)
    assert found["random"].accepts(1) and not found["random"].uses_population


def test_register_checks_its_class_and_registered_undoes_itself():
    class Nameless(HillClimb):
        name = ""

    with pytest.raises(ValueError, match="no name"):
        registry.register(Nameless)
    with pytest.raises(TypeError, match="not a Strategy"):
        registry.register(dict)
    with registry.registered(HillClimb):
        assert registry.get("hill_climb") is HillClimb and registry.origin("hill_climb") == "registered"
    assert "hill_climb" not in registry.available()


@pytest.mark.parametrize("settings, fragment", [
    (SearchSettings(algorithm="annealing"), "--algorithm must be one of aging, nsga2, random"),
    (SearchSettings(algorithm="random", objectives=("synflow", "params")), "need --algorithm nsga2 (random optimises one)"),
    (SearchSettings(algorithm="nsga2", objectives=("synflow",)), "nsga2 needs at least two --objectives"),
])
def test_resolve_settings_checks_the_strategy(settings, fragment):
    with pytest.raises(EvonasError) as caught:
        resolve_settings(settings)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_a_registered_strategy_is_a_choice_and_strategies_without_a_population_run_short():
    with registry.registered(HillClimb):
        with pytest.raises(EvonasError, match="hill_climb"):
            resolve_settings(SearchSettings(algorithm="nope"))
        # the space's default population (25) would exceed the budget; a strategy without one is not refused
        assert resolve_settings(SearchSettings(algorithm="hill_climb", budget=8)).population == 8
    with pytest.raises(EvonasError, match="--population"):
        resolve_settings(SearchSettings(algorithm="aging", budget=8))


# ---- random search --------------------------------------------------------------------
def test_random_search_proposes_the_spaces_samples_and_keeps_the_best(space):
    rng = random.Random(7)
    expected = [space.to_str(space.sample(rng)) for _ in range(12)]
    strategy = RandomSearch(_context(space, seed=7))
    proposals = [strategy.propose() for _ in range(12)]
    assert [p.genotype for p in proposals] == expected and all(p.parent is None for p in proposals)
    for i, (p, score) in enumerate(zip(proposals, [3.0, None, 5.0, 5.0, 1.0, *[0.0] * 7])):
        strategy.tell(i, p.genotype, p.key, score)
    assert strategy.best.eval_id == 2 and strategy.front() == [strategy.best]  # the first of two equal scores
    lower = RandomSearch(_context(space, higher_is_better=False))
    for i, score in enumerate([3.0, 1.0, 2.0]):
        lower.tell(i, f"g{i}", f"k{i}", score)
    assert lower.best.score == 1.0


def test_random_search_state_round_trip_continues_identically(space):
    strategy = RandomSearch(_context(space, seed=3))
    for i in range(5):
        p = strategy.propose()
        strategy.tell(i, p.genotype, p.key, float(i))
    twin = RandomSearch(_context(space, seed=99))
    twin.load_state_dict(json.loads(json.dumps(strategy.state_dict())))
    assert [strategy.propose() for _ in range(5)] == [twin.propose() for _ in range(5)]
    assert twin.best.eval_id == 4 and twin.state_dict() == strategy.state_dict()
    with pytest.raises(ValueError, match="higher_is_better"):
        RandomSearch(_context(space, higher_is_better=False)).load_state_dict(strategy.state_dict())


def test_nsga2_front_is_the_non_dominated_members(space):
    strategy = registry.create("nsga2", _context(space, population=5, cost_objectives=("params",)))
    points = [(1.0, 1.0), (2.0, 2.0), (1.5, 3.0), (0.5, 0.5), (2.0, 1.5)]  # (score up, params down)
    for i, (score, params) in enumerate(points):
        p = strategy.propose()
        strategy.tell(i, p.genotype, f"cell{i}", score, {"params": params})
    assert sorted(c.eval_id for c in strategy.front()) == [0, 3, 4]


# ---- through the driver -----------------------------------------------------------------
def _comparable(state: dict) -> dict:
    """A state without the RNG (reseeded on resume) and the logbook (one entry per checkpoint written)."""
    return {k: v for k, v in state.items() if k not in ("rng", "logbook")}


def _pinned(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("t", "seconds")} for r in history]


@pytest.mark.parametrize("algorithm", list(SETTINGS))
def test_kill_9_then_resume_is_exact_for_every_strategy(tmp_path, algorithm):
    """Built-in or plug-in, the same driver rebuilds the state of a run that never died, loses and
    repeats nothing, resubmits what was in flight, and continues as a pure function of the run."""
    settings = SETTINGS[algorithm]
    run_dir = tmp_path / "r"
    with registry.registered(HillClimb):
        # cache hits can add several lines between two results: die at the first wait past 23 lines
        checkpoint, before = kill_search_when(settings, run_dir, lambda history: len(history) >= 23)
        covered = checkpoint["lines"]
        assert 20 <= covered < len(before) < 40
        resolved = resolve_settings(settings)
        restored, never_died = (registry.create(algorithm, StrategyContext.from_settings(resolved, True))
                                for _ in range(2))
        restored.load_state_dict(checkpoint["evolution"])
        replay(restored, before[covered:])
        replay(never_died, before)
        assert _comparable(restored.state_dict()) == _comparable(never_died.state_dict())
        assert restored.best.eval_id == never_died.best.eval_id

        shutil.copytree(run_dir, tmp_path / "twin")
        made: list[ShuffledExecutor] = []

        def factory(scoring, config):
            made.append(ShuffledExecutor(scoring, num_workers=3, seed=3))
            return made[-1]

        for folder in (run_dir, tmp_path / "twin"):
            resume_search(folder, executor_factory=factory)
    after = history_lines(run_dir)
    assert after[:len(before)] == before and len(after) == 40 and len({r["id"] for r in after}) == 40
    in_flight = {int(i) for i in checkpoint["pending"]} - {r["id"] for r in before}
    assert in_flight and in_flight <= set(made[0].submitted)
    assert all(r["genotype"] == checkpoint["pending"][str(r["id"])]["genotype"] for r in after if r["id"] in in_flight)
    assert _pinned(history_lines(tmp_path / "twin")) == _pinned(after)
    assert json.loads((run_dir / "best.json").read_text())["complete"]
    assert json.loads((run_dir / "config.json").read_text())["search"]["algorithm"] == algorithm


def test_cli_random_search_scores_the_spaces_samples(monkeypatch, capsys, tmp_path, space):
    run = tmp_path / "r"
    code, out, err = run_cli(monkeypatch, capsys, "search", *TINY, "--budget", "6", "--seed", "4",
                             "--algorithm", "random", "--run-dir", str(run))
    assert code == 0, err
    rng = random.Random(4)
    assert [r["genotype"] for r in history_lines(run)] == [space.to_str(space.sample(rng)) for _ in range(6)]
    assert all(r["parent"] is None for r in history_lines(run))
    code, out, _ = run_cli(monkeypatch, capsys, "show", str(run))
    assert code == 0 and "seed=4, random" in out.splitlines()[0]
    code, out, err = run_cli(monkeypatch, capsys, "search", "--space", "nb201", "--dataset", "synthetic", "--budget", "6",
                             "--algorithm", "random", "--objectives", "synflow,params", "--run-dir", str(tmp_path / "bad"))
    assert_one_line_error(code, out, err, "need --algorithm nsga2")


PLUGIN_HEADER = '''"""A strategy package installed apart from evonas (written by the test)."""
import random

from evonas.searching.strategy import Candidate, Proposal, Strategy, StrategyContext


'''
ENTRY_POINTS = """[evonas.strategies]
hill_climb = evonas_strategy_demo:HillClimb
broken = evonas_no_such_module:Nothing
"""


def test_an_entry_point_strategy_is_found_by_the_cli(tmp_path):
    site = tmp_path / "site"
    info = site / "evonas_strategy_demo-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evonas-strategy-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "evonas_strategy_demo.py").write_text(PLUGIN_HEADER + inspect.getsource(HillClimb))
    run = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "evonas.cli", "search", *TINY, "--budget", "8",
                          "--algorithm", "hill_climb", "--run-dir", str(run)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "strategy plug-in 'broken'" in out.stderr and "failed to load" in out.stderr  # a warning, not a failure
    assert json.loads((run / "config.json").read_text())["search"]["algorithm"] == "hill_climb"
    history = history_lines(run)
    assert len(history) == 8 and history[0]["parent"] is None
    assert all(r["parent"] is not None for r in history[1:])  # hill climbing mutates the incumbent
