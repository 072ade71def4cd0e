"""Run folder: durable history, atomic checkpoint, resume after a kill or Ctrl-C, TensorBoard."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from evonas.searching import resolve_settings
from evonas.settings import SearchSettings
from evonas.errors import EvonasError
from evonas.runs import RunRecord, write_atomic
from evonas.searching import resume_search, start_search
from search_fakes import FakeScorer, ShuffledExecutor, history_lines, kill_search_when, local_fake, recording_factory

CFG = SearchSettings(space="nb201", estimator="params", budget=40, population=6, sample=2, seed=1, checkpoint_every=5, checkpoint_seconds=0)




def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "state.json"
    write_atomic(path, {"a": 1})
    write_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_torn_history_line_is_cut_off_and_corrupt_lines_refused(tmp_path):
    folder = RunRecord.create(tmp_path / "r")
    folder.append_history({"id": 0})
    folder.append_history({"id": 1})
    folder.close()
    with open(folder.history_path, "a") as fh:
        fh.write('{"id": 2, "geno')  # killed mid-write
    assert [r["id"] for r in folder.read_history()] == [0, 1]
    assert folder.history_path.read_text().endswith('"geno')  # reading alone changes nothing
    assert [r["id"] for r in folder.read_history(repair=True)] == [0, 1]
    assert folder.history_path.read_text().endswith("}\n")
    folder.history_path.write_text('{"id": 0}\nnot json\n')
    with pytest.raises(EvonasError, match="line 2"):
        folder.read_history()


def test_run_folder_contents(tmp_path):
    run = start_search(CFG, run_dir=tmp_path / "r", executor_factory=local_fake)
    config = json.loads((run / "config.json").read_text())
    assert {"torch", "deap", "ray", "numpy", "networkx", "python"} <= config["versions"].keys()
    assert config["search"]["population"] == 6 and config["scoring"]["seed"] == 1
    assert config["scoring"]["build_options"] == {"channels": 16, "cells_per_stage": 5}
    assert config["estimator"] == {"name": "params", "settings": {}, "higher_is_better": True,
                                   "needs_calibration": False}
    hist = history_lines(run)
    fields = {"id", "genotype", "key", "score", "seconds", "worker", "status", "cache_hit", "error"}
    assert all(fields <= r.keys() for r in hist)
    best = json.loads((run / "best.json").read_text())
    assert best["complete"] and best["evaluations"] == 40
    assert best["best"]["score"] == max(r["score"] for r in hist)
    assert [t["score"] for t in best["top"]] == sorted((t["score"] for t in best["top"]), reverse=True)
    checkpoint = json.loads((run / "checkpoint.json").read_text())
    assert checkpoint["evaluations"] == 40 and len(checkpoint["evolution"]["population"]) == 6
    summary = RunRecord.open(run).summary(top_k=3)
    assert summary["complete"] and summary["top"][0]["score"] == best["best"]["score"]


def test_tensorboard_scalars_histogram_text_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = start_search(CFG, run_dir=tmp_path / "r", executor_factory=local_fake)
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"fitness/best", "fitness/mean", "fitness/median", "speed/evaluations_per_second",
            "cache/hit_rate"} <= set(tags["scalars"])
    assert "fitness/population" in tags["histograms"]
    assert any(t.startswith("best/genotype") for t in tags["tensors"])
    best = acc.Scalars("fitness/best_so_far")
    assert best[-1].step == 40 and best[-1].value == pytest.approx(max(r["score"] for r in history_lines(run)))
    population_best = acc.Scalars("fitness/best")  # of the current population: the best may have aged out
    assert all(p.value <= b.value + 1e-6 for p, b in zip(population_best, best[-len(population_best):]))
    assert (run / "tb" / "hparams").is_dir()


def test_resume_after_a_kill_counts_every_evaluation_once(tmp_path):
    """Kill (no final checkpoint) with jobs in flight and a torn line; resume must finish exactly."""
    run_dir = tmp_path / "r"
    # dies with 3 lines past the periodic checkpoint at 20; the folder is left as kill -9 leaves it
    checkpoint, before = kill_search_when(CFG, run_dir, lambda history: len(history) == 23)
    assert checkpoint["evaluations"] == 20 and checkpoint["pending"]
    assert len(before) == 23

    factory, resumed = recording_factory()
    resume_search(run_dir, executor_factory=factory)
    after = history_lines(run_dir)
    ids = [r["id"] for r in after]
    assert len(after) == 40 and len(set(ids)) == 40
    assert after[:23] == before  # nothing finished was lost, changed or repeated
    done_before = {r["id"] for r in before}
    in_flight = {int(i) for i in checkpoint["pending"]} - done_before
    assert in_flight and in_flight <= set(resumed[0].submitted)  # in-flight jobs went out again...
    for r in after[23:]:  # ...with their own ids and genotypes
        if r["id"] in in_flight:
            assert r["genotype"] == checkpoint["pending"][str(r["id"])]["genotype"]
    assert not done_before & set(resumed[0].submitted)
    assert json.loads((run_dir / "best.json").read_text())["complete"]


def test_checkpoints_wait_for_their_interval_and_resume_from_an_old_one_is_exact(tmp_path):
    """With checkpoint_seconds, periodic checkpoints are skipped; a kill then replays the whole history."""
    slow = replace(CFG, checkpoint_seconds=3600.0)
    checkpoint, before = kill_search_when(slow, tmp_path / "r", lambda history: len(history) == 23)
    assert checkpoint["evaluations"] == 0 and checkpoint["evolution"]["logbook"] == []  # only the starting one
    resume_search(tmp_path / "r", executor_factory=lambda s, c: ShuffledExecutor(s, num_workers=3, seed=3))
    after = history_lines(tmp_path / "r")
    assert len(after) == 40 and len({r["id"] for r in after}) == 40 and after[:23] == before
    final = json.loads((tmp_path / "r" / "checkpoint.json").read_text())
    assert final["evaluations"] == 40
    # one logbook entry per checkpoint: the resumed session's first periodic one (at 25) and the last
    assert [entry["evals"] for entry in final["evolution"]["logbook"]] == [25, 40]


def test_ctrl_c_checkpoints_and_resume_finishes(tmp_path):
    run_dir = tmp_path / "r"

    class Interrupted(ShuffledExecutor):
        def wait(self, timeout=None):
            if len(history_lines(run_dir)) == 13:
                raise KeyboardInterrupt
            return super().wait(timeout)

    with pytest.raises(KeyboardInterrupt):
        start_search(CFG, run_dir=run_dir, executor_factory=lambda s, c: Interrupted(s, num_workers=2))
    checkpoint = json.loads((run_dir / "checkpoint.json").read_text())
    assert checkpoint["evaluations"] == 13 and len(checkpoint["pending"]) == 2
    assert not json.loads((run_dir / "best.json").read_text())["complete"]
    assert not RunRecord.open(run_dir).summary()["complete"]
    resume_search(run_dir, executor_factory=lambda s, c: ShuffledExecutor(s, num_workers=2))
    ids = [r["id"] for r in history_lines(run_dir)]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert {int(i) for i in checkpoint["pending"]} <= set(ids)


def test_resume_can_extend_the_budget_but_not_change_the_search(tmp_path):
    run = start_search(CFG, run_dir=tmp_path / "r", executor_factory=local_fake)
    FakeScorer.calls = []
    resume_search(run, executor_factory=local_fake)  # finished: nothing to do, nothing scored
    assert len(history_lines(run)) == 40 and FakeScorer.calls == []
    resume_search(run, {"budget": 55}, executor_factory=local_fake)
    ids = [r["id"] for r in history_lines(run)]
    assert len(ids) == 55 and len(set(ids)) == 55
    with pytest.raises(EvonasError, match="population"):
        resume_search(run, {"population": 9}, executor_factory=local_fake)
    with pytest.raises(EvonasError, match="already has 55 evaluations"):
        resume_search(run, {"budget": 50}, executor_factory=local_fake)


def test_unusable_checkpoints_are_one_line_errors(tmp_path):
    run = start_search(CFG, run_dir=tmp_path / "r", executor_factory=local_fake)
    (run / "checkpoint.json").write_text("{not json")
    with pytest.raises(EvonasError, match="unreadable"):
        resume_search(run, executor_factory=local_fake)
    (run / "checkpoint.json").write_text('{"something": "else"}')
    with pytest.raises(EvonasError, match="not an evonas search checkpoint"):
        resume_search(run, executor_factory=local_fake)
    shutil.rmtree(run / "tb")
    (run / "checkpoint.json").unlink()
    with pytest.raises(EvonasError, match="missing"):
        resume_search(run, executor_factory=local_fake)
    with pytest.raises(EvonasError, match="already holds a run"):
        start_search(CFG, run_dir=run, executor_factory=local_fake)
    with pytest.raises(EvonasError, match="does not exist"):
        resume_search(tmp_path / "nowhere", executor_factory=local_fake)


def test_search_config_survives_json_and_fills_space_defaults():
    cfg = resolve_settings(SearchSettings(space="darts", estimator="sweet", interval=(1e-4, 5e-4), workers=3))
    assert (cfg.population, cfg.sample, cfg.executor) == (50, 10, "ray")  # the space's own defaults
    assert SearchSettings.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert resolve_settings(SearchSettings(space="nb201")).population == 25
    assert SearchSettings(space="darts").resolved((7, 3)).population == 7  # settings alone take them as given
    assert SearchSettings(space="nb201", time_limit=60, budget=None).resolved().executor == "local"
    with pytest.raises(EvonasError, match="budget"):
        SearchSettings(budget=None).resolved()


def test_tensorboard_scalars_are_throttled_but_the_last_values_always_land(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from evonas.searching.board import Board

    now = [0.0]
    summarised: list[int] = []

    def stats(step: int):
        return lambda: summarised.append(step) or {"best": step, "mean": step, "median": step}

    board = Board(tmp_path / "tb", interval=0.5, clock=lambda: now[0])
    for step in range(1, 11):  # ten evaluations within 0.09 s: only the first is written at once
        board.step(step, stats(step), float(step), 100.0, 0.0)
        now[0] += 0.01
    now[0] += 1.0
    board.step(11, stats(11), 11.0, 100.0, 0.0)  # the interval has passed: written
    board.step(12, stats(12), 12.0, 100.0, 0.0)
    board.close()  # the last values land at the end
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("fitness/best_so_far")] == [1, 11, 12]
    assert summarised == [1, 11, 12]  # the population is summarised only for the steps written
    assert [e.value for e in acc.Scalars("fitness/mean")] == [1, 11, 12]
