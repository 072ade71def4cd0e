"""``evonas compare``: the returned cell of each run against the table, the gap, and the fronts' spread."""
from __future__ import annotations

import json

import pytest

from cli_helpers import assert_one_line_error, run_cli
from evonas.comparing import compare_runs
from evonas.costs import CostModel
from evonas.costs.table_front import direct_costs
from evonas.fronts import front_quality
from evonas.searching import start_search
from evonas.settings import SearchSettings
from search_fakes import history_lines, local_fake
from test_table_front import fake_table, random_cells


def search(tmp_path, name, seed, **kw):
    settings = SearchSettings(space="nb201", estimator="synflow", budget=20, population=5, sample=2, seed=seed,
                              checkpoint_every=5, checkpoint_seconds=0, **kw)
    return start_search(settings, run_dir=tmp_path / name, executor_factory=local_fake)


def test_returned_cells_gaps_and_front_spread(tmp_path):
    runs = [search(tmp_path, f"mo{s}", s, objectives=("synflow", "params")) for s in (0, 1)]
    limited = search(tmp_path, "limited", 2, constraints={"params": 0.5})
    evaluated = [r["genotype"] for run in [*runs, limited] for r in history_lines(run) if r["status"] == "ok"]
    accuracy = fake_table(tmp_path / "truth.csv", evaluated + random_cells(20, seed=3))
    result = compare_runs([*runs, limited], tmp_path / "truth.csv", {"params": [0.4, 1.6]})
    model = CostModel("nb201", "cifar10", ("params",))
    params = {g: direct_costs(model, g)["params"] for g in accuracy}
    rows = result["runs"]
    for row, run in zip(rows, [*runs, limited]):
        best = json.loads((run / "best.json").read_text())["best"]["genotype"]
        assert row["genotype"] == best and row["true_accuracy"] == accuracy[best]
    assert rows[0]["best_feasible"] == max(accuracy.values())
    assert rows[2]["best_feasible"] == max(a for g, a in accuracy.items() if params[g] <= 0.5)
    assert rows[2]["gap"] == pytest.approx(rows[2]["best_feasible"] - rows[2]["true_accuracy"])
    assert "front_quality" not in rows[2]  # one objective: no front
    table = [(params[g], a) for g, a in accuracy.items()]
    per_run = [front_quality([(r["costs"]["params"], accuracy[r["genotype"]])
                              for r in json.loads((run / "best.json").read_text())["front"]], table, [0.4, 1.6])
               for run in runs]
    spread = result["fronts"]["params"]
    assert spread["budgets"] == [0.4, 1.6]
    at_large = [q["regret"][1] for q in per_run]
    assert spread["regret"][1]["mean"] == pytest.approx(sum(at_large) / 2) and spread["regret"][1]["max"] == max(at_large)
    assert spread["hv_ratio"]["min"] == pytest.approx(min(q["hv_ratio"] for q in per_run))
    assert result["at_best"] == sum(r["gap"] <= 0.01 for r in rows)


def test_cli_writes_markdown_and_refuses_bad_input(tmp_path, monkeypatch, capsys):
    run = search(tmp_path, "r", 0)
    fake_table(tmp_path / "truth.csv", [r["genotype"] for r in history_lines(run) if r["status"] == "ok"])
    code, out, err = run_cli(monkeypatch, capsys, "compare", str(run), "--truth", str(tmp_path / "truth.csv"),
                             "--markdown", str(tmp_path / "c.md"), "--title", "Seeds")
    assert code == 0, err
    text = (tmp_path / "c.md").read_text()
    assert text.startswith("# Seeds") and "| `r` | 0 | `synflow` | aging |" in text and "1 runs" in text
    code, out, err = run_cli(monkeypatch, capsys, "compare", str(tmp_path / "nothing"), "--truth", str(tmp_path / "truth.csv"))
    assert_one_line_error(code, out, err, "nothing")


def test_api_compare_takes_run_objects_and_reports_user_errors(tmp_path):
    import evonas

    run = search(tmp_path, "r", 1)
    fake_table(tmp_path / "truth.csv", [r["genotype"] for r in history_lines(run) if r["status"] == "ok"])
    result = evonas.compare([evonas.Run.load(run)], tmp_path / "truth.csv")
    assert result["runs"][0]["genotype"] == json.loads((run / "best.json").read_text())["best"]["genotype"]
    with pytest.raises(evonas.EvonasError):
        evonas.compare([], tmp_path / "truth.csv")
