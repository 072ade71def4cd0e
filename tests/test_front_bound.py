"""`evonas correlate --from DIR --front-cost COST`: each fitness's own exact Pareto front under a cost, judged by
true accuracy (evonas/correlating/front_bound.py). Hand-checked fronts, a brute-force front, the CLI and its errors."""
from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli
from evonas import correlating as corr
from evonas.correlating import front_bound as fb
from evonas.correlating.selection import library_composite
from evonas.errors import EvonasError
from evonas.fronts import dominates
from evonas.scoring.composite import Normalisation

HW_TABLE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "nb201_hw_cifar10.csv"

# ---- the front itself ----------------------------------------------------------------


def test_exact_front_by_hand():
    nan = math.nan
    costs = [1, 1, 1, 2, 3, 3, 4, -1, 5]
    scores = [5, 5, 3, 4, 7, nan, 7, 9, 8]
    # 0 and 1 tie (both stay); 2 and 3 lose to 0; 5 failed; 6 loses to 4 (same score, dearer);
    # 7 is unmeasured in this cost; 8 is the dearest and best
    assert fb.exact_front(scores, costs) == [0, 1, 4, 8]


def brute_front(scores, costs):
    """Every finite, measured cell no other such cell dominates in (cost, -score), by the definition."""
    points = {i: (costs[i], -scores[i]) for i in range(len(scores)) if math.isfinite(scores[i]) and costs[i] >= 0}
    return sorted(i for i, p in points.items() if not any(dominates(q, p) for q in points.values()))


@pytest.mark.parametrize("seed", range(20))
def test_exact_front_matches_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    costs = [rng.choice([-1, *range(8)]) for _ in range(n)]  # few values: many ties in cost and score
    scores = [rng.choice([math.nan, *range(6)]) for _ in range(n)]
    assert sorted(fb.exact_front(scores, costs)) == brute_front(scores, costs)


def test_fitness_bound_by_hand():
    costs, truth = [1, 2, 3, 4, 5], [70, 90, 80, 95, 60]
    # front: cells 0, 2, 3, 4 (cell 1, the 90 at cost 2, ranks below the cheaper cell 0)
    bound = fb.fitness_bound([1, 0, 2, 3, 4], costs, truth, [0.5, 1, 2, 3, 4, 5])
    assert bound["front_size"] == 4 and bound["true_front_size"] == 3
    assert bound["regret"] == [None, 0, 20, 10, 0, 0]
    # reference (5, median 80): the table dominates (4-2)*(90-80) + (5-4)*(95-80) = 35, the front only 15
    assert bound["reference"] == [5, 80]
    assert bound["hv_ratio"] == pytest.approx(15 / 35)
    assert fb.fitness_bound([0, 1, 2, 3, 4], costs, truth)["hv_ratio"] == pytest.approx(1.0)


def test_coverage_labels():
    assert fb.Coverage(15625, 15625).label() == "all 15,625 cells"
    assert "over the 6 scored cells of 15,625, not the whole table" in fb.Coverage(6, 15625).label()
    assert not fb.Coverage(6, None, listed=False).whole and "(a sample)" in fb.Coverage(6, None, False).label()
    assert "a bound on a search over these cells" in fb.Coverage(575, 575, listed=False).label()


def test_a_cost_nobody_measured_is_one_error():
    with pytest.raises(EvonasError, match="no cell is measured"):
        fb.fitness_bound([1.0, 2.0], [-1, -1], [50, 60])


# ---- a finished folder, written by hand ------------------------------------------------
GENOTYPES = [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
]
TRUTH = [10.0, 60.0, 85.0, 90.0, 93.0, 94.0]
PARAMS = [0.07, 0.08, 0.3, 0.6, 0.9, 1.5]  # made-up deployed sizes: the manifest's, read as the params cost
SCORES = {"params": [0.07, 0.08, 0.3, 0.6, 0.9, 1.5],
          "synflow": [5.0, 3.0, 50.0, 20.0, 80.0, math.nan]}  # the last cell failed
NORMS = {"params": {"transform": "asinh", "center": 2.0, "scale": 1.0, "unit": 0.07},
         "synflow": {"transform": "asinh", "center": 1.0, "scale": 2.0, "unit": 3.0}}


@pytest.fixture()
def folder(tmp_path) -> Path:
    """A finished, unsharded correlate folder: params and synflow of six NB-201 cells, normalisation kept."""
    out = tmp_path / "run"
    out.mkdir()
    runs = {f"{n}@0": {"key": f"k{n}", "settings": {}} for n in SCORES}
    manifest = {"space": "nb201", "cells_digest": "-", "estimators": list(SCORES), "seeds": [0], "shard": [0, 1],
                "cells": [[g, t] for g, t in zip(GENOTYPES, TRUTH)], "runs": runs, "params": PARAMS,
                "record": {"dataset": "cifar10", "data": {}, "seed": 0, "archs_file": "a.csv", "sample": None},
                "normalisation": {f"{n}@0": v for n, v in NORMS.items()}}
    (out / corr.MANIFEST).write_text(json.dumps(manifest))
    with (out / corr.STORE).open("w") as fh:
        for name, scores in SCORES.items():
            for cell, score in enumerate(scores):
                ok = math.isfinite(score)
                fh.write(json.dumps({"cell": cell, "arch": GENOTYPES[cell], "estimator": name, "seed": 0,
                                     "key": f"k{name}", "status": "ok" if ok else "failed",
                                     "score": score if ok else None, "seconds": 0.0, "error": None if ok else "nan"})
                         + "\n")
    return out


def cost_table(path: Path, rows: list[tuple[str, float]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch", "pixel3_latency", "edgetpu_latency"])
        for i, (genotype, ms) in enumerate(rows):
            writer.writerow([genotype, ms, -1 if i == 0 else ms / 2])
    return path


def test_folder_bounds_are_the_fronts_of_the_stored_scores(folder):
    stored = corr.read_folder(folder)
    bound = corr.folder_bounds(stored, fb.folder_costs(stored, ["params"]), {"params": [0.1, 0.6, 2.0]})
    assert not bound["whole"] and "6 scored cells of 15,625" in bound["coverage"]
    rows = bound["costs"]["params"]["fitness"]
    assert list(rows) == ["params", "synflow"]  # the registry's composites need parts this folder lacks
    # params against params: no cell beats another in both, so all six are on the front
    assert rows["params"] == {"front_size": 6, "hv_ratio": pytest.approx(1.0), "regret": [0, 0, 0]}
    # synflow: cells 0 (0.07M, score 5), 2 (50) and 4 (80); cell 1 (3) loses to 0, cell 3 (20 at 0.6M) to 2,
    # cell 5 failed. Under 0.1M the table has 60 (cell 1), the front 10; under 0.6M 90 against 85; then 94 and 93
    assert rows["synflow"]["front_size"] == 3
    assert rows["synflow"]["regret"] == [pytest.approx(50.0), pytest.approx(5.0), pytest.approx(1.0)]


def test_composites_are_the_librarys(folder):
    stored = corr.read_folder(folder)
    columns, skipped = fb.fitness_columns(stored, ["params+synflow=2"])
    assert skipped == [] and "params+synflow=2" in columns
    norms = {n: Normalisation.from_dict(n, v) for n, v in NORMS.items()}
    raw = {r.name: np.asarray(r.scores) for r in stored.runs}
    expected = library_composite("params+synflow=2", raw, {n: {} for n in raw}, norms)
    got = columns["params+synflow=2"]
    assert all(math.isnan(a) and math.isnan(b) or a == b for a, b in zip(got, expected))
    assert math.isnan(got[5]) and math.isfinite(got[0])


def test_recommended_composites_are_tagged_fixed(folder, monkeypatch):
    monkeypatch.setattr(fb, "RECOMMENDED", {"params+synflow": "why", "params+sweet": "a part is missing"})
    stored = corr.read_folder(folder)
    columns, skipped = fb.fitness_columns(stored)
    assert list(columns) == ["params", "synflow", "params+synflow (fixed)"] and skipped == []
    given, _ = fb.fitness_columns(stored, ["params+synflow", "synflow+sweet"])
    assert list(given) == ["params", "synflow", "params+synflow"]  # given by the user: no tag
    np.testing.assert_array_equal(given["params+synflow"], columns["params+synflow (fixed)"])
    assert fb.fitness_columns(stored, ["synflow+sweet"])[1] == ["synflow+sweet"]


def test_cost_table_columns_and_unmeasured_cells(folder, tmp_path):
    table = cost_table(tmp_path / "hw.csv", [(g, 1.0 + i) for i, g in enumerate(GENOTYPES)])
    stored = corr.read_folder(folder)
    costs = fb.folder_costs(stored, ["pixel3_latency", "edgetpu_latency"], table)
    assert costs["pixel3_latency"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    bound = corr.folder_bounds(stored, costs, {}, {"synflow": SCORES["synflow"]})["costs"]
    assert bound["edgetpu_latency"]["measured"] == 5  # cell 0 has -1: not measured, not on front or table
    assert bound["pixel3_latency"]["fitness"]["synflow"]["front_size"] == 3


def test_flops_are_the_search_cost_models(folder):
    from evonas.costs import CostModel

    costs = fb.folder_costs(corr.read_folder(folder), ["flops", "params"])
    model = CostModel("nb201", "cifar10", ["flops"])
    assert list(costs) == ["flops", "params"] and costs["params"] == PARAMS
    assert costs["flops"][::5] == [model(g, g)["flops"] for g in GENOTYPES[::5]]  # the first cell and the last
    assert len(costs["flops"]) == 6 and costs["flops"][0] < costs["flops"][-1]


def test_cli_prints_and_writes_markdown(folder, tmp_path, monkeypatch, capsys):
    md = tmp_path / "t.md"
    code, out, err = run_cli(monkeypatch, capsys, "correlate", "--from", str(folder), "--front-cost", "params",
                             "--budgets", "params=0.1M,1M", "--composites", "params+synflow", "--markdown", str(md))
    assert code == 0, err
    assert "front bound under params" in out and "6 scored cells of 15,625" in out
    text = md.read_text()
    assert "### Front bound under `params`" in text
    assert "| fitness | front size | HV ratio | regret @0.1M | regret @1M |" in text
    assert "| `params` | 6 | 1.000 | 0.00 | 0.00 |" in text
    assert "| `synflow` | 3 |" in text and "| `params+synflow` |" in text


@pytest.mark.parametrize("args, fragment", [
    (["--front-cost", "nope"], "unknown cost 'nope' for --front-cost; costs are params, flops (a measured cost"),
    (["--front-cost", "latency"], "--front-cost latency needs the search's latency table"),
    (["--front-cost", "params", "--budgets", "flops=1M"], "--budgets gives flops, which is not a --front-cost"),
    (["--budgets", "params=1M"], "--cost-table and --budgets go with --front-cost"),
    (["--front-cost", "params", "--budgets", "params=1"], "--budgets takes a count with its unit"),
])
def test_cli_errors_are_one_line(folder, monkeypatch, capsys, args, fragment):
    assert_one_line_error(*run_cli(monkeypatch, capsys, "correlate", "--from", str(folder), *args), fragment)


def test_cost_table_missing_cells_is_one_line(folder, tmp_path, monkeypatch, capsys):
    table = cost_table(tmp_path / "hw.csv", [(g, 1.0) for g in GENOTYPES[:4]])
    assert_one_line_error(*run_cli(monkeypatch, capsys, "correlate", "--from", str(folder), "--cost-table", str(table),
                                   "--front-cost", "pixel3_latency"),
                          "has no row for 2 of the folder's 6 cells (first: " + GENOTYPES[4])


def test_front_cost_needs_from(tmp_path, monkeypatch, capsys):
    assert_one_line_error(*run_cli(monkeypatch, capsys, "correlate", "--front-cost", "params"),
                          "pass them with --from DIR")


@pytest.mark.skipif(not HW_TABLE.is_file(), reason=f"needs HW-NAS-Bench's table {HW_TABLE} (../shared data)")
def test_real_hw_table_gives_its_own_rows(folder):
    costs = fb.folder_costs(corr.read_folder(folder), ["pixel3_latency"], HW_TABLE)["pixel3_latency"]
    with HW_TABLE.open(newline="") as fh:
        rows = {r["arch"]: float(r["pixel3_latency"]) for r in csv.DictReader(fh)}
    assert costs == [rows[g] for g in GENOTYPES]
