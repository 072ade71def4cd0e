"""Constraints in aging evolution: infeasible children are recorded, never scored, never counted."""
from __future__ import annotations

import json

import pytest

from cli_helpers import assert_one_line_error, run_cli
from evonas.errors import EvonasError
from evonas.runs import RunRecord
from evonas.searching import driver as search_driver
from evonas.searching import resume_search, start_search
from evonas.settings import SearchSettings
from search_fakes import FakeScorer, ShuffledExecutor, history_lines, kill_search_when, local_fake

LIMIT = 0.6  # million parameters: roughly half of the random NB-201 cells are over it
CFG = SearchSettings(space="nb201", estimator="params", budget=30, population=6, sample=2, seed=1,
                     checkpoint_every=5, checkpoint_seconds=0, constraints={"params": LIMIT})




def test_infeasible_children_are_recorded_but_never_scored_or_counted(tmp_path):
    run = start_search(CFG, run_dir=tmp_path / "r", executor_factory=local_fake)
    hist = history_lines(run)
    infeasible = [r for r in hist if r["status"] == "infeasible"]
    feasible = [r for r in hist if r["status"] != "infeasible"]
    assert infeasible and len(feasible) == 30  # the budget counts evaluations only
    assert all(r["score"] is None and r["costs"]["params"] > LIMIT and "params" in r["error"] for r in infeasible)
    assert all(r["costs"]["params"] <= LIMIT for r in feasible)
    assert not {r["key"] for r in infeasible} & set(FakeScorer.calls)  # never reached a worker
    state = json.loads((run / "checkpoint.json").read_text())
    assert all(m["costs"]["params"] <= LIMIT for m in state["evolution"]["population"])
    assert state["lines"] == len(hist) and state["evaluations"] == 30
    best = json.loads((run / "best.json").read_text())
    assert best["infeasible"] == len(infeasible) and best["evaluations"] == 30 and best["failed"] == 0
    assert best["best"]["costs"]["params"] <= LIMIT


def test_a_search_without_constraints_writes_the_same_lines_as_before(tmp_path):
    run = start_search(SearchSettings(**{**CFG.to_dict(), "constraints": {}}), run_dir=tmp_path / "r",
                       executor_factory=local_fake)
    assert all(set(r) == {"id", "genotype", "key", "parent", "score", "seconds", "worker", "status", "cache_hit",
                          "error", "t"} for r in history_lines(run))


def test_resume_after_a_kill_keeps_infeasible_lines_and_finishes_exactly(tmp_path):
    run_dir = tmp_path / "r"
    checkpoint, before = kill_search_when(
        CFG, run_dir, lambda history: sum(r["status"] != "infeasible" for r in history) >= 23)
    assert checkpoint["lines"] > checkpoint["evaluations"]  # infeasible lines are covered, not counted
    resume_search(run_dir, executor_factory=lambda s, c: ShuffledExecutor(s, num_workers=3, seed=3))
    after = history_lines(run_dir)
    assert after[:len(before)] == before
    assert sum(r["status"] != "infeasible" for r in after) == 30 and len({r["id"] for r in after}) == len(after)
    assert all(r["costs"]["params"] <= LIMIT for r in after if r["status"] != "infeasible")
    summary = RunRecord.open(run_dir).summary()
    assert summary["complete"] and summary["evaluations"] == 30


def test_a_nearly_empty_region_warns_then_stops_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(search_driver, "INFEASIBLE_WARN", 3)
    monkeypatch.setattr(search_driver, "INFEASIBLE_LIMIT", 6)
    tight = SearchSettings(**{**CFG.to_dict(), "constraints": {"params": 0.0735}})  # a hair above the fixed part
    with pytest.warns(UserWarning, match="nearly empty"), pytest.raises(EvonasError, match="6 children in a row"):
        start_search(tight, run_dir=tmp_path / "r", executor_factory=local_fake)
    assert all(r["status"] == "infeasible" for r in history_lines(tmp_path / "r"))


def test_a_constraint_below_every_cell_is_an_error_before_anything_runs(tmp_path):
    with pytest.raises(EvonasError, match="excludes every cell of nb201"):
        start_search(SearchSettings(**{**CFG.to_dict(), "constraints": {"params": 0.05}}), run_dir=tmp_path / "r",
                     executor_factory=local_fake)
    assert not (tmp_path / "r").exists()


def test_an_impossible_latency_bound_says_where_it_was_measured(monkeypatch):
    from evonas.costs import CostModel, LatencyTable, check_satisfiable

    table = LatencyTable({"space": "darts", "device": "cpu", "batch_size": 1, "threads": 1}, {}, 28.5, [])
    monkeypatch.setattr(LatencyTable, "ops_ms", lambda self, genotype: 4.0)
    model = CostModel("darts", "cifar10", ["latency"], table)
    with pytest.raises(EvonasError, match=r"excludes every cell of darts: its fixed part alone costs 28\.5 ?ms "
                                          r"on cpu \(batch 1, 1 thread\(s\)\).*--latency-device cuda"):
        check_satisfiable(model, {"latency": 3.0})
    check_satisfiable(model, {"latency": 30.0})  # above the fixed part: fine


@pytest.mark.parametrize("argv, fragment", [
    (["--max-params", "3ms"], "--max-params takes a count"),
    (["--max-latency", "1.5M"], "--max-latency takes a time"),
    (["--max-params", "1.0"], "with its unit"),
    (["--max-flops", "1K"], "excludes every cell"),
    (["--objectives", "sweet,parms"], "unknown objective"),
    (["--objectives", "params"], "needs one estimator besides the costs"),
    (["--objectives", "synflow", "--algorithm", "nsga2"], "nsga2 needs at least two --objectives"),
    (["--objectives", "synflow,params", "--algorithm", "aging"], "need --algorithm nsga2"),
    (["--algorithm", "annealing"], "--algorithm must be one of"),
    (["--max-latency", "2ms", "--latency-device", "tpu"], "--latency-device must be cpu or cuda"),
    (["--max-latency", "2ms", "--latency-statistic", "mean"], "--latency-statistic must be one of"),
])
def test_bad_inputs_are_one_line_errors(monkeypatch, capsys, tmp_path, argv, fragment):
    code, out, err = run_cli(monkeypatch, capsys, "search", "--space", "nb201", "--estimator", "synflow",
                             "--budget", "8", "--population", "4", "--run-dir", str(tmp_path / "r"), *argv)
    assert_one_line_error(code, out, err, fragment)
