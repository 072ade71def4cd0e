"""The table's true front: every table cell's exact costs, the (cost, accuracy) fronts, front-truth.png."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

import search_spaces
from cli_helpers import assert_one_line_error, run_cli
from evonas.costs import CostModel, LatencySettings, latency_table
from evonas.costs import latency as latency_module
from evonas.costs import table_front
from evonas.costs.table_front import direct_costs, table_costs, true_front
from evonas.fronts import front_quality
from evonas.errors import EvonasError
from evonas.searching import pareto, start_search
from evonas.searching.pareto import true_steps
from evonas.settings import SearchSettings
from search_fakes import history_lines, local_fake

SPECIAL = [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # nothing at all: the fixed part
    "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",  # a dead conv: built, never called
    "|none~0|+|none~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|skip_connect~2|",  # ops reading an all-zero node
    "|avg_pool_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_1x1~0|skip_connect~1|avg_pool_3x3~2|",
]


def fake_timer(module, x):
    """Deterministic 'time' with no round numbers (so summation order would show in the last digits)."""
    return sum(p.numel() for p in module.parameters()) / 1e3 + x.numel() / 7e4 + 1 / 3


@pytest.fixture()
def fake_latency(monkeypatch, tmp_path):
    """A latency table from the fake timer, cached where a default-settings search finds it."""
    monkeypatch.setenv("EVONAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(latency_module, "SATURATION", 15)
    return latency_table(LatencySettings("nb201"), timer=fake_timer)[0]


def random_cells(n: int, seed: int) -> list[str]:
    space = search_spaces.get("nb201")
    rng = random.Random(seed)
    return [space.to_str(space.sample(rng)) for _ in range(n)]


def brute_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Points nothing beats: no other is as cheap and more accurate (accuracies are distinct)."""
    return sorted(p for p in points if not any(q[0] <= p[0] and q[1] > p[1] for q in points))


def fake_table(path: Path, genotypes: list[str], seed: int = 0) -> dict[str, float]:
    """A truth CSV of ``genotypes`` with distinct made-up accuracies."""
    unique = list(dict.fromkeys(genotypes))
    accuracies = dict(zip(unique, (a / 100 for a in random.Random(seed).sample(range(1000, 9500), len(unique)))))
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch", "cifar10_test"])
        writer.writerows(accuracies.items())
    return accuracies


def test_true_front_matches_a_brute_force_on_a_small_table():
    genotypes = random_cells(30, seed=3)
    accuracy = dict(zip(genotypes, (a / 100 for a in random.Random(1).sample(range(1000, 9500), 30))))
    model = CostModel("nb201", "cifar10", ("params", "flops"))
    front = true_front(model, list(accuracy.items()))
    direct = {g: direct_costs(CostModel("nb201", "cifar10", ("params", "flops")), g) for g in genotypes}
    expected: set[str] = set()
    for name in ("params", "flops"):
        brute = brute_front([(direct[g][name], accuracy[g], g) for g in genotypes])
        assert true_steps(front, ("params", "flops"), name) == [(c, a) for c, a, _ in brute]
        expected |= {g for _, _, g in brute}
    assert {c["genotype"] for c in front} == expected
    for cell in front:
        assert cell["costs"] == direct[cell["genotype"]] and cell["accuracy"] == accuracy[cell["genotype"]]
    # tuples (cost values in cost order..., accuracy) draw the same steps as cell dicts
    as_tuples = [(c["costs"]["params"], c["costs"]["flops"], c["accuracy"]) for c in front]
    assert true_steps(as_tuples, ("params", "flops"), "flops") == true_steps(front, ("params", "flops"), "flops")


def test_fast_costs_equal_the_cost_model_on_random_cells(fake_latency):
    names = ("params", "flops", "latency")
    genotypes = SPECIAL + random_cells(16, seed=7)
    fast = table_costs(CostModel("nb201", "cifar10", names, fake_latency), genotypes)
    model = CostModel("nb201", "cifar10", names, fake_latency)
    assert fast == [direct_costs(model, g) for g in genotypes]  # the same numbers, not approximately
    assert fast[0]["latency"] == round(fake_latency.fixed_ms, 6)


def test_fast_latency_leaves_out_what_a_whole_graph_backend_folds(monkeypatch, tmp_path):
    """onnxruntime tables: ops whose input does not depend on the image cost nothing, in every later cell too."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("EVONAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(latency_module, "SATURATION", 15)
    table = latency_table(LatencySettings("nb201", backend="onnxruntime"), timer=fake_timer)[0]
    genotypes = SPECIAL + random_cells(12, seed=8)
    model = CostModel("nb201", "cifar10", ("latency",), table)
    fast = table_costs(model, genotypes)
    assert fast == [direct_costs(model, g) for g in genotypes]
    assert fast[2]["latency"] == round(table.fixed_ms, 6)  # its output never depends on the image


def test_the_fast_path_refuses_to_answer_when_it_disagrees(monkeypatch):
    model = CostModel("nb201", "cifar10", ("params",))
    right = table_front._RepeatedCellCosts.cell_costs
    monkeypatch.setattr(table_front._RepeatedCellCosts, "cell_costs", lambda self, g: {"params": right(self, g)["params"] + 1})
    with pytest.raises(EvonasError, match="differ from CostModel"):
        table_costs(model, random_cells(5, seed=0))


def test_other_spaces_take_the_cost_model_cell_by_cell():
    space = search_spaces.get("darts")
    genotypes = [space.to_str(space.sample(random.Random(0)))]
    seen = []
    model = CostModel("darts", "cifar10", ("params",))
    costs = table_costs(model, genotypes, lambda done, total: seen.append((done, total)))
    assert costs == [direct_costs(CostModel("darts", "cifar10", ("params",)), genotypes[0])] and seen == [(1, 1)]


def _capture_plots(monkeypatch) -> tuple[list[dict], list[dict]]:
    """Record plot_front's arguments and every step line drawn, then draw for real."""
    from matplotlib.axes import Axes

    calls, steps = [], []
    real_plot, real_step = pareto.plot_front, Axes.step
    monkeypatch.setattr(pareto, "plot_front", lambda *a, **kw: calls.append({"args": a, **kw}) or real_plot(*a, **kw))
    monkeypatch.setattr(Axes, "step", lambda ax, x, y, *a, **kw: steps.append({"x": list(x), "y": list(y), **kw})
                        or real_step(ax, x, y, *a, **kw))
    return calls, steps


def test_show_truth_draws_the_tables_true_front(tmp_path, monkeypatch, capsys):
    settings = SearchSettings(space="nb201", budget=40, population=6, sample=2, seed=1, checkpoint_every=5,
                              checkpoint_seconds=0, objectives=("synflow", "params"))
    run = start_search(settings, run_dir=tmp_path / "r", executor_factory=local_fake)
    evaluated = [r["genotype"] for r in history_lines(run) if r["status"] == "ok"]
    accuracy = fake_table(tmp_path / "truth.csv", evaluated + random_cells(30, seed=5))
    calls, steps = _capture_plots(monkeypatch)
    code, out, _ = run_cli(monkeypatch, capsys, "show", str(run), "--truth", str(tmp_path / "truth.csv"))
    assert code == 0 and "true front of the table's" in out
    assert "params: regret" in out and "hypervolume" in out and "of the table's true front" in out
    assert (run / "front-truth.png").stat().st_size > 1000
    (call,) = calls
    assert call["args"][0] == run / "front-truth.png" and call["args"][4] == ["params"]
    model = CostModel("nb201", "cifar10", ("params",))
    brute = brute_front([(direct_costs(model, g)["params"], a, g) for g, a in accuracy.items()])
    assert sorted((c["costs"]["params"], c["accuracy"], c["genotype"]) for c in call["true_front"]) == brute
    assert call["truth"] and all(accuracy[g] == a for g, a in call["truth"].items())  # the evaluated cells keep theirs
    (step,) = steps  # one cost, one step line: the table's front, labelled as such
    assert step["label"] == f"true front (table, {len(brute)})"
    assert list(zip(step["x"], step["y"])) == [(c, a) for c, a, _ in brute]
    code, out, _ = run_cli(monkeypatch, capsys, "show", str(run))  # without --truth: no true front anywhere
    assert code == 0 and len(calls) == 1 and "true front" not in out


def test_show_truth_judges_the_front_by_regret_and_hypervolume(tmp_path, monkeypatch, capsys):
    settings = SearchSettings(space="nb201", budget=30, population=6, sample=2, seed=3, checkpoint_every=5,
                              checkpoint_seconds=0, objectives=("synflow", "params"))
    run = start_search(settings, run_dir=tmp_path / "r", executor_factory=local_fake)
    evaluated = [r["genotype"] for r in history_lines(run) if r["status"] == "ok"]
    accuracy = fake_table(tmp_path / "truth.csv", evaluated + random_cells(25, seed=7))
    code, out, _ = run_cli(monkeypatch, capsys, "show", str(run), "--truth", str(tmp_path / "truth.csv"),
                           "--budgets", "params=0.3M,1.6M", "--json")
    assert code == 0
    shown = json.loads(out)
    model = CostModel("nb201", "cifar10", ("params",))
    table = [(direct_costs(model, g)["params"], a) for g, a in accuracy.items()]
    front = [(r["costs"]["params"], accuracy[r["genotype"]]) for r in shown["front"]]
    assert all(r["true_accuracy"] == accuracy[r["genotype"]] for r in shown["front"] + shown["top"])
    expected = front_quality(front, table, [0.3, 1.6])
    got = shown["front_quality"]["params"]
    assert got["budgets"] == [0.3, 1.6] and got["regret"] == pytest.approx(expected["regret"])
    assert got["hv_ratio"] == pytest.approx(expected["hv_ratio"]) and 0 < got["hv_ratio"] <= 1
    best = max(a for _, a in table)  # at the largest budget the regret is the best cell's accuracy minus the front's
    assert got["regret"][1] == pytest.approx(best - max(a for _, a in front))


def test_show_budgets_need_a_cost_and_units(tmp_path, monkeypatch, capsys):
    settings = SearchSettings(space="nb201", budget=6, population=3, sample=2, seed=3, checkpoint_every=5,
                              checkpoint_seconds=0, objectives=("synflow", "params"))
    run = start_search(settings, run_dir=tmp_path / "r", executor_factory=local_fake)
    for bad, fragment in (("0.3M", "COST=V1,V2"), ("params=0.3", "with its unit")):
        code, out, err = run_cli(monkeypatch, capsys, "show", str(run), "--budgets", bad)
        assert_one_line_error(code, out, err, fragment)


def test_show_truth_of_a_latency_run_uses_the_runs_table(tmp_path, monkeypatch, capsys, fake_latency):
    settings = SearchSettings(space="nb201", budget=10, population=4, sample=2, seed=2, checkpoint_every=5,
                              checkpoint_seconds=0, objectives=("synflow", "latency"))
    run = start_search(settings, run_dir=tmp_path / "r", executor_factory=local_fake)
    accuracy = fake_table(tmp_path / "truth.csv", random_cells(12, seed=9))
    monkeypatch.setenv("EVONAS_CACHE", str(tmp_path / "elsewhere"))  # the run folder's own table is used
    calls, steps = _capture_plots(monkeypatch)
    code, out, _ = run_cli(monkeypatch, capsys, "show", str(run), "--truth", str(tmp_path / "truth.csv"))
    assert code == 0 and "true front of the table's 12 cells" in out
    model = CostModel("nb201", "cifar10", ("latency",), fake_latency)
    brute = brute_front([(direct_costs(model, g)["latency"], a, g) for g, a in accuracy.items()])
    assert sorted((c["costs"]["latency"], c["accuracy"], c["genotype"]) for c in calls[0]["true_front"]) == brute
    assert [s["label"] for s in steps] == [f"true front (table, {len(brute)})"]
    assert (run / "front-truth.png").stat().st_size > 1000


def test_nb201_params_front_matches_the_published_trade_off(nb201_truth):
    """Best true CIFAR-10 accuracy under 0.2/0.4/0.6/0.8/1.0/1.6M parameters, over all 15,625 cells."""
    bench = search_spaces.get("nb201").benchmark(nb201_truth)
    cells = [(c.arch, c.truth) for c in bench.cells("cifar10_test")]
    front = true_front(CostModel("nb201", "cifar10", ("params",)), cells)
    published = {0.2: 91.32, 0.4: 93.60, 0.6: 94.02, 0.8: 94.31, 1.0: 94.34, 1.6: 94.37}
    for budget, best in published.items():
        assert max(c["accuracy"] for c in front if c["costs"]["params"] <= budget) == pytest.approx(best, abs=0.006)
