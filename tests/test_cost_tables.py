"""Measured device costs from a table (--cost-table): parsing, lookups, constraints, NSGA-II, resume, show --truth."""
from __future__ import annotations

import csv
import hashlib
import json
import random
from pathlib import Path

import pytest

import search_spaces
from cli_helpers import assert_one_line_error, run_cli
from evonas.costs import CostModel, CostTable
from evonas.errors import EvonasError
from evonas.fronts import dominates
from evonas.searching import pareto, resolve_settings, resume_search, start_search
from evonas.seeding import stable_seed
from evonas.settings import SearchSettings, format_cost, parse_cost, parse_cost_bounds
from search_fakes import FakeScorer, ShuffledExecutor, history_lines, kill_search_when, local_fake

DEAD_CONV = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"  # isomorphic to ONLY_SKIP
ONLY_SKIP = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
COLUMNS = ("dev_latency", "dev_energy", "tpu_latency")
LIMIT = 5.0  # ms of dev_latency: about half of the fake table's cells are over it


def fake_costs(genotype: str) -> dict[str, float]:
    """Made-up device costs of one genotype string: isomorphic strings differ, every fifth TPU entry is unmeasured."""
    h = stable_seed(genotype)
    return {"dev_latency": 0.5 + h % 9000 / 1000, "dev_energy": 1.0 + h % 7919 / 100,
            "tpu_latency": -1.0 if h % 5 == 0 else 0.2 + h % 3001 / 1000}


def write_table(path: Path, genotypes: list[str], costs=fake_costs) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch", *COLUMNS])
        writer.writerows([g, *(costs(g)[c] for c in COLUMNS)] for g in genotypes)
    return path


@pytest.fixture(scope="module")
def full_table(tmp_path_factory) -> Path:
    """Every NB-201 cell with fake costs (a search needs a table that covers the space)."""
    cells = search_spaces.get("nb201").benchmark_order()
    return write_table(tmp_path_factory.mktemp("table") / "device.csv", cells)


def settings(table: Path, **kw) -> SearchSettings:
    base = dict(space="nb201", estimator="params", budget=30, population=6, sample=2, seed=1, checkpoint_every=5,
                checkpoint_seconds=0, cost_table=str(table))
    return SearchSettings(**{**base, **kw})


# ---- parsing and settings ------------------------------------------------------------
def test_table_costs_take_the_unit_their_name_says():
    assert parse_cost("pixel3_latency", "5ms") == 5.0 and parse_cost("pixel3_latency", "800us") == pytest.approx(0.8)
    assert parse_cost("edgegpu_energy", "20mJ") == 20.0 and parse_cost("edgegpu_energy", "0.5J") == 500.0
    assert parse_cost("eyeriss_arithmetic_intensity", "2.5") == 2.5
    assert format_cost("pixel3_latency", 5.0) == "5ms" and format_cost("fpga_energy", 12.5) == "12.5mJ"
    assert format_cost("eyeriss_arithmetic_intensity", 2.5) == "2.5"
    for name, text, needle in (("pixel3_latency", "5", "a time with its unit"), ("edgegpu_energy", "5ms", "energy"),
                               ("eyeriss_arithmetic_intensity", "3ms", "a plain number"),
                               ("pixel3_latency", "0ms", "must be positive")):
        with pytest.raises(EvonasError, match=needle) as info:
            parse_cost(name, text)
        assert f"--max-cost {name}=" in str(info.value)
    assert parse_cost_bounds(["pixel3_latency=5ms", " fpga_energy = 1J "]) == {"pixel3_latency": 5.0, "fpga_energy": 1000.0}
    for terms, needle in ((["pixel3_latency"], "NAME=VALUE"), (["=5ms"], "NAME=VALUE"),
                          (["a_latency=1ms", "a_latency=2ms"], "twice")):
        with pytest.raises(EvonasError, match=needle):
            parse_cost_bounds(terms)


def test_settings_know_the_tables_columns_and_refuse_what_they_do_not_use(full_table):
    resolved = resolve_settings(settings(full_table, constraints={"dev_latency": LIMIT}))
    assert resolved.cost_table_columns == COLUMNS and resolved.costs_needed == ("dev_latency",)
    assert resolved.cost_table_sha256 == hashlib.sha256(full_table.read_bytes()).hexdigest()
    assert SearchSettings.from_dict(json.loads(json.dumps(resolved.to_dict()))) == resolved  # config.json round trip
    nsga = resolve_settings(settings(full_table, estimator="synflow", objectives=("synflow", "dev_energy", "params")))
    assert nsga.estimator == "synflow" and nsga.cost_objectives == ("dev_energy", "params")
    assert nsga.costs_needed == ("params", "dev_energy") and nsga.algorithm == "nsga2"
    for kw, needle in (({"constraints": {"pixel3_latency": 5.0}}, "unknown constraint 'pixel3_latency'"),
                       ({}, "is used by no constraint or objective"),
                       ({"estimator": "synflow", "objectives": ("synflow", "pixel3_latency")}, "not both possible")):
        with pytest.raises(EvonasError, match=needle):
            resolve_settings(settings(full_table, **kw))
    with pytest.raises(EvonasError, match=r"add --cost-table FILE"):
        resolve_settings(SearchSettings(constraints={"pixel3_latency": 5.0}))


# ---- the table -----------------------------------------------------------------------
def test_lookup_is_exact_then_isomorphic_and_a_missing_cell_is_one_line(tmp_path):
    space = search_spaces.get("nb201")
    assert space.str_key(DEAD_CONV) == space.str_key(ONLY_SKIP)
    table = CostTable.read("nb201", write_table(tmp_path / "t.csv", [ONLY_SKIP, CONV]))
    assert table.columns == COLUMNS and table.genotypes == [ONLY_SKIP, CONV]
    assert table(CONV) == pytest.approx(fake_costs(CONV))  # its own row
    assert table(DEAD_CONV) == pytest.approx(fake_costs(ONLY_SKIP))  # no row of its own: the isomorphic cell's
    with pytest.raises(EvonasError, match="has no row for") as info:
        table("|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert "\n" not in str(info.value)
    both = CostTable.read("nb201", write_table(tmp_path / "both.csv", [ONLY_SKIP, DEAD_CONV]))
    assert both(DEAD_CONV) == pytest.approx(fake_costs(DEAD_CONV)) != both(ONLY_SKIP)  # keyed by string, not class
    model = CostModel("nb201", "cifar10", ("params", "dev_latency"), table=both)
    one, other = model(ONLY_SKIP, space.str_key(ONLY_SKIP)), model(DEAD_CONV, space.str_key(DEAD_CONV))
    assert one["params"] == other["params"]  # evonas's own costs: one per isomorphism class
    assert one["dev_latency"] == fake_costs(ONLY_SKIP)["dev_latency"] != other["dev_latency"]  # measured: per string
    with pytest.raises(EvonasError, match="unknown cost 'pixel3_latency'"):
        CostModel("nb201", "cifar10", ("pixel3_latency",), table=both)


@pytest.mark.parametrize("text, needle", [
    ("arch,dev_latency\n", "needs a header"),
    ("genome,dev_latency\nx,1\n", "needs a header"),
    (f"arch,note\n{CONV},fast\n", "no numeric column"),
    (f"arch,dev_latency\n{CONV},1.5\n{ONLY_SKIP},slow\n", "line 3: dev_latency 'slow' is not a number"),
])
def test_bad_tables_are_one_line_errors(tmp_path, text, needle):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(EvonasError, match=needle):
        CostTable.read("nb201", tmp_path / "t.csv")


def test_a_table_missing_cells_or_below_every_bound_fails_before_anything_runs(tmp_path, full_table):
    partial = write_table(tmp_path / "partial.csv", [ONLY_SKIP, CONV])
    space = search_spaces.get("nb201")
    listed = {space.str_key(ONLY_SKIP), space.str_key(CONV)}
    missing = sum(space.str_key(g) not in listed for g in space.benchmark_order())  # isomorphic cells are covered
    with pytest.raises(EvonasError, match=f"has no row for {missing} of the 15625 nb201 cells"):
        start_search(settings(partial, constraints={"dev_latency": LIMIT}), run_dir=tmp_path / "a",
                     executor_factory=local_fake)
    with pytest.raises(EvonasError, match=r"--max-cost dev_latency=0.1ms excludes every row.*cheapest cell costs 0.5"):
        start_search(settings(full_table, constraints={"dev_latency": 0.1}), run_dir=tmp_path / "b",
                     executor_factory=local_fake)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---- searches ------------------------------------------------------------------------
def test_constrained_aging_over_a_table_cost(tmp_path, full_table):
    FakeScorer.calls.clear()
    run = start_search(settings(full_table, constraints={"dev_latency": LIMIT}), run_dir=tmp_path / "r",
                       executor_factory=local_fake)
    hist = history_lines(run)
    infeasible = [r for r in hist if r["status"] == "infeasible"]
    feasible = [r for r in hist if r["status"] != "infeasible"]
    assert infeasible and len(feasible) == 30
    assert all(r["costs"] == {"dev_latency": fake_costs(r["genotype"])["dev_latency"]} for r in hist)  # by string
    assert all(r["costs"]["dev_latency"] > LIMIT and r["error"] == f"dev_latency {format_cost('dev_latency', r['costs']['dev_latency'])} > 5ms"
               for r in infeasible)
    assert all(r["costs"]["dev_latency"] <= LIMIT for r in feasible)
    assert not {r["key"] for r in infeasible} - {r["key"] for r in feasible} & set(FakeScorer.calls)
    config = json.loads((run / "config.json").read_text())["search"]
    assert config["cost_table"] == str(full_table.resolve())
    assert config["cost_table_sha256"] == hashlib.sha256(full_table.read_bytes()).hexdigest()


def test_nsga2_over_score_and_table_cost_keeps_the_front(tmp_path, full_table):
    cfg = settings(full_table, estimator="synflow", objectives=("synflow", "tpu_latency"), budget=40)
    run = start_search(cfg, run_dir=tmp_path / "r", executor_factory=local_fake)
    hist = history_lines(run)
    unmeasured = [r for r in hist if r["status"] == "infeasible"]
    assert unmeasured and all(r["costs"]["tpu_latency"] == -1.0 and "tpu_latency not measured" in r["error"]
                              for r in unmeasured)  # never scored, never compared
    scored = [r for r in hist if r["status"] == "ok"]
    assert len(scored) == 40 and all(r["costs"]["tpu_latency"] == fake_costs(r["genotype"])["tpu_latency"] >= 0
                                     for r in scored)
    points = {r["genotype"]: (-r["score"], r["costs"]["tpu_latency"]) for r in scored}
    front = json.loads((run / "best.json").read_text())["front"]
    assert front and all(not any(dominates(q, points[c["genotype"]]) for q in points.values()) for c in front)
    on_front = {(-c["score"], c["costs"]["tpu_latency"]) for c in front}
    assert all(p in on_front or any(dominates(q, p) or q == p for q in on_front) for p in points.values())
    state = json.loads((run / "checkpoint.json").read_text())
    assert state["evolution"]["cost_objectives"] == ["tpu_latency"]


def test_resume_is_exact_and_refuses_a_changed_table(tmp_path, monkeypatch, capsys):
    cells = search_spaces.get("nb201").benchmark_order()
    table = write_table(tmp_path / "device.csv", cells)
    cfg = settings(table, estimator="synflow", objectives=("synflow", "dev_energy"), constraints={"dev_latency": LIMIT})
    run_dir = tmp_path / "r"
    checkpoint, before = kill_search_when(cfg, run_dir, lambda h: sum(r["status"] == "ok" for r in h) >= 23)
    resume_search(run_dir, executor_factory=lambda s, c: ShuffledExecutor(s, num_workers=3, seed=3))
    after = history_lines(run_dir)
    assert after[:len(before)] == before and len({r["id"] for r in after}) == len(after)
    assert sum(r["status"] != "infeasible" for r in after) == 30
    assert all(r["costs"] == {k: fake_costs(r["genotype"])[k] for k in ("dev_latency", "dev_energy")} for r in after)
    write_table(table, cells, costs=lambda g: {**fake_costs(g), "dev_energy": 1.0})  # measured again: other numbers
    code, out, err = run_cli(monkeypatch, capsys, "search", "--resume", str(run_dir), "--budget", "40")
    assert_one_line_error(code, out, err, "changed since the run started")
    assert len(history_lines(run_dir)) == len(after)


def test_show_truth_draws_the_table_costs_true_front(tmp_path, monkeypatch, capsys, full_table):
    cfg = settings(full_table, estimator="synflow", objectives=("synflow", "dev_latency"), budget=20, population=4)
    run = start_search(cfg, run_dir=tmp_path / "r", executor_factory=local_fake)
    rng = random.Random(4)
    space = search_spaces.get("nb201")
    cells = list(dict.fromkeys([r["genotype"] for r in history_lines(run)]
                               + [space.to_str(space.sample(rng)) for _ in range(40)]))
    accuracy = dict(zip(cells, (a / 100 for a in rng.sample(range(1000, 9500), len(cells)))))
    with (tmp_path / "truth.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([("arch", "cifar10_test"), *accuracy.items()])
    calls = []
    real_plot = pareto.plot_front
    monkeypatch.setattr(pareto, "plot_front", lambda *a, **kw: calls.append({"args": a, **kw}) or real_plot(*a, **kw))
    code, out, err = run_cli(monkeypatch, capsys, "show", str(run), "--truth", str(tmp_path / "truth.csv"))
    assert code == 0, err
    assert f"true front of the table's {len(cells)} cells" in out and "true front not drawn" not in out
    (call,) = calls
    assert call["args"][4] == ["dev_latency"] and (run / "front-truth.png").stat().st_size > 1000
    points = [(fake_costs(g)["dev_latency"], a) for g, a in accuracy.items()]
    brute = sorted(p for p in points if not any(q[0] <= p[0] and q[1] > p[1] for q in points))
    assert pareto.true_steps(call["true_front"], ["dev_latency"], "dev_latency") == brute


def test_cli_search_with_a_cost_table(tmp_path, monkeypatch, capsys, full_table):
    tiny = ["search", "--dataset", "synthetic", "--estimator", "params", "--space", "nb201", "--budget", "6",
            "--population", "3", "--sample", "2", "--cost-table", str(full_table)]
    code, out, err = run_cli(monkeypatch, capsys, *tiny, "--max-cost", "dev_latency=5ms", "--max-cost",
                             "dev_energy=60mJ", "--run-dir", str(tmp_path / "r"))
    assert code == 0, err
    search = json.loads((tmp_path / "r" / "config.json").read_text())["search"]
    assert search["constraints"] == {"dev_latency": 5.0, "dev_energy": 60.0}
    code, out, _ = run_cli(monkeypatch, capsys, "show", str(tmp_path / "r"))
    assert code == 0 and "dev_latency <= 5ms" in out and "dev_energy <= 60mJ" in out
    for args, needle in ((["--max-cost", "dev_latency=5"], "takes a time with its unit"),
                         (["--max-cost", "dev_latency"], "NAME=VALUE"),
                         (["--max-cost", "pixel3_latency=5ms"], "unknown constraint 'pixel3_latency'"),
                         (["--max-params", "1M", "--max-cost", "params=1M"], "repeats --max-params")):
        code, out, err = run_cli(monkeypatch, capsys, *tiny, *args, "--run-dir", str(tmp_path / "bad"))
        assert_one_line_error(code, out, err, needle)
    assert not (tmp_path / "bad").exists()


def test_hw_nas_bench_table_covers_nb201(shared_dir):
    path = shared_dir / "benchmarks" / "nb201_hw_cifar10.csv"
    if not path.is_file():
        pytest.skip(f"HW-NAS-Bench table {path} is absent")
    table = CostTable.read("nb201", path)
    assert table.columns == ("edgegpu_latency", "edgegpu_energy", "raspi4_latency", "edgetpu_latency", "pixel3_latency",
                             "eyeriss_latency", "eyeriss_energy", "eyeriss_arithmetic_intensity", "fpga_latency",
                             "fpga_energy")
    table.check_covers()
    with path.open(newline="") as fh:
        first = next(csv.DictReader(fh))
    assert table(first["arch"])["pixel3_latency"] == float(first["pixel3_latency"])
    assert sum(v < 0 for v in table.values["edgetpu_latency"]) == 4699  # HW-NAS-Bench's unmeasured Edge TPU cells
