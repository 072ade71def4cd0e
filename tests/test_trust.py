"""`evonas trust`: short training as the truth for spaces without a table; resume, ranking, the table comparison.

The trainings are faked (``train_candidates`` replaced by a function with the same contract) except in
one tiny real run, so the suite never trains for long; the scoring is real (cheap estimators, toy space).
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

import search_spaces
from cli_helpers import assert_one_line_error, run_cli
from evonas import trusting
from evonas.correlating import spearman
from evonas.errors import EvonasError
from evonas.trusting import TrustSettings, rank_estimators, recommend, trust
from toy_space import ToySpace

CHEAP = ("synflow", "grad_norm")
WEIGHT = {"conv3": 9.0, "conv1": 3.0, "pool": 1.0, "skip": 0.0}


@pytest.fixture(autouse=True)
def toy() -> Any:
    with search_spaces.registered(ToySpace):
        yield


def short_accuracy(genotype: str) -> float:
    """A made-up short-training accuracy: conv3 layers help most (so size ranks well)."""
    ops = genotype.split("-")
    return 10.0 + sum(WEIGHT[op] for op in ops) + 0.1 * ops.index(ops[-1])


class FakeTrainer:
    """``train_candidates``'s contract without training: ``on_result`` per candidate; ``die_after`` kills it."""

    def __init__(self, die_after: int | None = None, accuracy: Any = short_accuracy) -> None:
        self.trained: list[str] = []
        self.die_after = die_after
        self.accuracy = accuracy

    def __call__(self, record, candidates, into, overrides=None, *, resume=False, workers=None, address=None,
                 device=None, progress=None, on_result=None) -> list[dict[str, Any]]:
        assert resume and record.settings().search.space == "toy"
        results = []
        for c in candidates:
            if self.die_after is not None and len(self.trained) == self.die_after:
                raise KeyboardInterrupt
            acc = self.accuracy(c["genotype"])
            result = {"status": "ok", "rank": c["rank"], "genotype": c["genotype"], "test_accuracy": acc,
                      "best_test_accuracy": acc, "wall_seconds": 1.5, "out_dir": str(into / str(c["rank"])),
                      "train_images": overrides.get("train_images"), "test_images": None, "synthetic_data": True}
            self.trained.append(c["genotype"])
            on_result(result)
            results.append(result)
        return results


def settings(**changes: Any) -> TrustSettings:
    base = dict(space="toy", estimators=CHEAP, sample=8, epochs=1, images=32, dataset="synthetic", seed=3)
    return TrustSettings(**{**base, **changes})


def test_trust_ranks_every_estimator_and_the_baselines_against_short_training(tmp_path, monkeypatch) -> None:
    fake = FakeTrainer()
    monkeypatch.setattr(trusting, "train_candidates", fake)
    heard: list[tuple[int, int]] = []
    progress = trusting.TrustProgress(trained=lambda done, total, line, eta: heard.append((done, total)))
    result = trust(settings(), tmp_path / "t", progress)
    out = tmp_path / "t"
    assert {p.name for p in out.iterdir()} >= {"config.json", "cells.json", "trained.jsonl", "correlate",
                                                 "trust.json", "trust.md"}
    assert heard == [(i, 8) for i in range(1, 9)]
    cells = result["cells"]
    assert len({c["key"] for c in cells}) == 8 and [c["accuracy"] for c in cells] == \
        [short_accuracy(c["genotype"]) for c in cells]
    names = [r["estimator"] for r in result["ranking"]]
    assert sorted(names) == sorted([*CHEAP, "params", "flops"])  # the size baselines are always there
    rhos = [r["spearman"] for r in result["ranking"]]
    assert rhos == sorted(rhos, reverse=True) and [r["place"] for r in result["ranking"]] == [1, 2, 3, 4]
    summary = json.loads((out / "correlate" / "summary.json").read_text())
    assert {n: summary["results"][n]["spearman"] for n in names} == dict(zip(names, rhos))  # correlate's own numbers
    assert result["recommendation"].startswith(f"trust {names[0]}:")
    assert "short training is itself a proxy" in result["caveat"]
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["sample"] == 8 and "torch" in config["versions"]
    assert json.loads((out / "trust.json").read_text())["ranking"] == json.loads(json.dumps(result["ranking"]))
    assert "Caveat: short training is itself a proxy" in (out / "trust.md").read_text()


def test_a_killed_run_trains_only_the_missing_cells_on_a_rerun(tmp_path, monkeypatch) -> None:
    out = tmp_path / "t"
    monkeypatch.setattr(trusting, "train_candidates", FakeTrainer(die_after=3))
    with pytest.raises(KeyboardInterrupt):
        trust(settings(), out)
    assert len((out / "trained.jsonl").read_text().splitlines()) == 3  # each finished cell was on disk at once
    with (out / "trained.jsonl").open("a") as fh:
        fh.write('{"cell": 5, "genot')  # a line torn by kill -9
    again = FakeTrainer()
    monkeypatch.setattr(trusting, "train_candidates", again)
    result = trust(settings(), out)
    first_three = [c["genotype"] for c in result["cells"][:3]]
    assert len(again.trained) == 5 and not set(again.trained) & set(first_three)
    whole = FakeTrainer()
    monkeypatch.setattr(trusting, "train_candidates", whole)
    uninterrupted = trust(settings(), tmp_path / "whole")
    assert untimed(result["ranking"]) == untimed(uninterrupted["ranking"]) and result["cells"] == uninterrupted["cells"]
    finished = FakeTrainer()
    monkeypatch.setattr(trusting, "train_candidates", finished)
    assert trust(settings(), out)["ranking"] == result["ranking"] and finished.trained == []  # nothing left to do


def untimed(ranking: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "seconds_per_cell"} for r in ranking]


def test_a_rerun_with_other_flags_or_a_corrupt_folder_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(trusting, "train_candidates", FakeTrainer())
    out = tmp_path / "t"
    trust(settings(), out)
    with pytest.raises(EvonasError, match=r"cannot continue .*sample 8 \(not 9\)"):
        trust(settings(sample=9), out)
    with pytest.raises(EvonasError, match="epochs 1 \\(not 2\\)"):
        trust(settings(epochs=2), out)
    trust(settings(executor="ray", workers=1), out)  # how it runs may change
    lines = (out / "trained.jsonl").read_text().splitlines()
    (out / "trained.jsonl").write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    with pytest.raises(EvonasError, match="trained.jsonl line 2 is not JSON"):
        trust(settings(), out)
    (out / "cells.json").write_text('{"cells": 3}')
    with pytest.raises(EvonasError, match="cells.json is corrupt"):
        trust(settings(), out)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, stdout, err = run_cli(monkeypatch, capsys, "trust", "--space", "toy", "--estimator", "synflow",
                                "--dataset", "synthetic", "--sample", "4", "--out", str(other))
    assert_one_line_error(code, stdout, err, "is not an `evonas trust` folder")


@pytest.mark.parametrize("argv, fragment", [
    (["--space", "nowhere"], "unknown search space 'nowhere'"),
    (["--space", "toy", "--estimator", "sweet,nonsense"], "nonsense"),
    (["--space", "toy", "--sample", "2"], "--sample must be at least 3"),
    (["--space", "toy", "--epochs", "0"], "--epochs must be at least 1"),
    (["--space", "toy", "--workers", "2"], "need the Ray executor"),
])
def test_bad_input_is_one_line(tmp_path, monkeypatch, capsys, argv, fragment) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "trust", *argv, "--dataset", "synthetic", "--out", str(tmp_path / "t"))
    assert_one_line_error(code, out, err, fragment)
    assert not (tmp_path / "t").exists()


def test_cli_prints_the_ranked_table_the_recommendation_and_progress(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(trusting, "train_candidates", FakeTrainer())
    code, out, err = run_cli(monkeypatch, capsys, "trust", "--space", "toy", "--estimator", "synflow",
                             "--dataset", "synthetic", "--sample", "5", "--images", "16", "--seed", "1",
                             "--out", str(tmp_path / "t"))
    assert code == 0, err
    result = json.loads((tmp_path / "t" / "trust.json").read_text())
    assert result["recommendation"] in out and "caveat: short training is itself a proxy" in out
    assert "cell 5/5 trained" in err and "ETA" in err and "training 5 of 5 cells" in err
    assert result["settings"]["images"] == 16 and result["settings"]["seed"] == 1


def _row(name: str, rho: float, tau: float | None = None) -> dict[str, Any]:
    return {"spearman": rho, "kendall": rho if tau is None else tau, "n": 20, "scored": 20, "failed": 0,
            "seconds_per_cell": 0.1}


def test_ranking_puts_the_best_first_ties_to_the_baseline_and_undefined_last() -> None:
    ranking = rank_estimators({"sweet": _row("sweet", 0.6), "params": _row("params", 0.6), "nwot": _row("nwot", 0.8),
                               "jacov": _row("jacov", math.nan), "synflow": _row("synflow", 0.6, 0.7)})
    assert [r["estimator"] for r in ranking] == ["nwot", "synflow", "params", "sweet", "jacov"]
    line = recommend(ranking, 20, "short training")
    assert line.startswith("trust nwot: Spearman 0.80 (95% ~[") and "baselines params 0.60" in line
    assert "not clearly ahead of synflow, params, sweet" in line  # 0.6 lies inside nwot's interval at 20 cells
    assert "not clearly ahead" not in recommend(ranking, 2000, "short training")
    by_size = recommend(rank_estimators({"flops": _row("flops", 0.7), "sweet": _row("sweet", 0.5)}), 50, "x")
    assert by_size.startswith("trust flops: no zero-cost estimator beats the flops baseline")
    lo, hi = trusting.spearman_interval(0.8, 20)
    assert lo < 0.8 < hi and trusting.spearman_interval(0.8, 2000)[0] > 0.77
    assert recommend(rank_estimators({"a": _row("a", math.nan)}), 5, "x").startswith("trust none")
    against = recommend(rank_estimators({"nwot": _row("nwot", -0.4), "params": _row("params", -0.7)}), 12, "short training")
    assert against.startswith("trust none: no estimator ranks the cells as short training does (best nwot")
    assert "its interval includes 0" in recommend(rank_estimators({"a": _row("a", 0.3)}), 12, "x")


def test_cells_left_at_chance_accuracy_are_warned_about() -> None:
    assert trusting.chance_warning([10.5, 10.7, 21.6, 30.0], 10).startswith("2 of 4 cells are within 2 points of chance")
    assert trusting.chance_warning([21.6, 30.0], 10) is None and trusting.chance_warning([1.0], None) is None


def test_most_cells_at_chance_means_trust_none_yet(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(trusting, "train_candidates", FakeTrainer(accuracy=lambda g: 10.0 + 0.01 * len(g)))
    result = trust(settings(sample=4), tmp_path / "t")
    assert result["recommendation"].startswith("trust none yet: most cells are still at chance accuracy")
    assert result["warning"].startswith("4 of 4 cells are within 2 points of chance (10.0%)")


def _table(path: Path) -> Path:
    """A toy benchmark table whose 'true' accuracy disagrees with short training on pools and skips."""
    from toy_space import all_cells

    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch", "acc"])
        for arch in all_cells():
            ops = arch.split("-")
            writer.writerow([arch, 50 + 5 * ops.count("conv3") + 4 * ops.count("pool") + 0.01 * len(arch)])
    return path


def test_truth_table_judges_the_same_cells_and_compares_the_two_rankings(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(trusting, "train_candidates", FakeTrainer())
    table = _table(tmp_path / "toy.csv")
    result = trust(settings(truth=str(table), truth_column="acc", sample=10), tmp_path / "t")
    versus = result["versus_table"]
    rows = {r[0]: float(r[1]) for r in csv.reader(table.open()) if r[0] != "arch"}
    assert [c["table"] for c in result["cells"]] == [rows[c["genotype"]] for c in result["cells"]]
    short = [c["accuracy"] for c in result["cells"]]
    assert versus["short_vs_table_spearman"] == pytest.approx(spearman(short, [c["table"] for c in result["cells"]]))
    side = versus["side_by_side"]
    assert [r["estimator"] for r in side] == [r["estimator"] for r in result["ranking"]]
    assert versus["rankings_spearman"] == pytest.approx(spearman([r["short_spearman"] for r in side],
                                                                 [r["table_spearman"] for r in side]))
    table_summary = json.loads((tmp_path / "t" / "table" / "summary.json").read_text())
    assert {r["estimator"]: r["spearman"] for r in versus["ranking"]} == \
        {n: v["spearman"] for n, v in table_summary["results"].items()}
    assert versus["same_choice"] == (versus["ranking"][0]["estimator"] == result["ranking"][0]["estimator"])
    assert "## Against the table" in (tmp_path / "t" / "trust.md").read_text()


def test_a_tiny_real_run_trains_through_the_trainer(tmp_path) -> None:
    result = trust(settings(sample=3, images=24, test_images=16, train_batch_size=8, estimators=("synflow",)),
                   tmp_path / "t")
    for cell in result["cells"]:
        saved = json.loads((trusting.train_folder(tmp_path / "t", cell) / "result.json").read_text())
        assert saved["test_accuracy"] == cell["accuracy"] and saved["train_images"] == 24
        assert saved["recipe"]["epochs"] == 1 and saved["recipe"]["seed"] == 3
    assert result["synthetic_data"] and len(result["ranking"]) == 3
