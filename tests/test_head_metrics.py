"""Head-of-ranking and within-size statistics (evonas.correlating.stats) on rankings whose answer is known
by construction, and their path through `evonas correlate` and the API."""
from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

import evonas
import search_spaces
from cli_helpers import run_cli
from evonas import correlating as corr

NAN = math.nan


def test_top_precision_at_1_and_5_percent():
    truth = np.arange(1000.0)  # cell 999 best
    scores = truth.copy()
    # the estimator's top 10 (1%): 3 of the true top 10 plus 7 mediocre cells lifted above them
    lifted = np.arange(500, 507)
    scores[lifted] = 2000 + np.arange(7)
    scores[990:997] = -1  # 7 of the true top 10 sink
    assert corr.top_precision(scores, truth, 0.01) == pytest.approx(3 / 10)
    # top 50 (5%): the true top 50 are 950..999, of which 7 sank; the 7 lifted cells take their places
    assert corr.top_precision(scores, truth, 0.05) == pytest.approx(43 / 50)
    assert corr.top_precision(truth, truth, 0.01) == 1.0
    assert corr.top_precision(-truth, truth, 0.05) == 0.0


def test_ndcg_hand_computed():
    truth = [5.0, 4.0, 3.0, 2.0, 1.0]  # true ranks: cell 0 best
    assert corr.ndcg([9, 8, 7, 6, 5], truth, k=2) == pytest.approx(1.0)
    # right pair, wrong order: gains 2 (best) and 1 (second); DCG = 1/log2(2) + 2/log2(3), ideal = 2 + 1/log2(3)
    assert corr.ndcg([8, 9, 7, 6, 5], truth, k=2) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert corr.ndcg([0, 0, 7, 8, 9], truth, k=2) == 0.0  # nothing of the true top 2 in the estimator's top 2
    assert corr.ndcg([1, 2], [2.0, 1.0], k=100) == corr.ndcg([8, 9, 7, 6, 5], truth, k=2)  # k capped at n = 2
    assert math.isnan(corr.ndcg([NAN], [1.0]))


def test_top_ranked_accuracy_and_rank():
    truth = [90.0, 94.0, 93.0, 92.0, 94.0]
    assert corr.top_ranked([1, 2, 3, 9, 4], truth) == (92.0, 4)  # two cells at 94, one at 93 above it
    assert corr.top_ranked([1, 9, 3, 2, 4], truth) == (94.0, 1)
    assert corr.top_ranked([5, 5, 1, 1, 1], truth) == (90.0, 5)  # tie in scores: the earlier cell
    assert corr.top_ranked([NAN, 1, 2, 3, 4], [99.0, *truth[1:]]) == (94.0, 1)  # a failed cell is no rival
    assert corr.top_ranked([NAN], [1.0])[1] is None


def test_size_buckets_are_quintiles_and_keep_equal_sizes_together():
    assert corr.size_buckets(np.arange(10.0)).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert corr.size_buckets([5, 1, 3, 2, 4, 9, 8, 7, 6, 0]).tolist() == [2, 0, 1, 1, 2, 4, 4, 3, 3, 0]
    params = [1.0] * 4 + [2.0] * 2 + [3.0] * 4 + [NAN]
    assert corr.size_buckets(params, buckets=2).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, -1]


def test_within_size_spearman_sees_what_a_size_proxy_hides():
    params = np.arange(20.0)  # 5 buckets of 4 cells
    bucket = params // 4
    truth = bucket * 100 - params  # bigger buckets are better, but inside a bucket the smaller cell wins
    size_proxy = corr.bucket_spearman(params, truth, params)
    assert corr.spearman(params, truth) > 0.9
    assert size_proxy["mean"] == pytest.approx(-1.0)
    assert [b["n"] for b in size_proxy["buckets"]] == [4] * 5
    assert [b["params"] for b in size_proxy["buckets"]] == [[4.0 * b, 4.0 * b + 3] for b in range(5)]
    across_wrong = params - bucket * 100  # perfect inside every bucket, backwards across them
    assert corr.spearman(across_wrong, bucket * 100 + params) < -0.9
    assert corr.bucket_spearman(across_wrong, bucket * 100 + params, params)["mean"] == pytest.approx(1.0)


def test_within_size_spearman_skips_failures_and_undefined_buckets():
    params = np.arange(10.0)
    truth = np.arange(10.0)
    scores = np.array([NAN, 1.0, 5.0, 5.0, 2.0, 1.0, 7.0, 8.0, 9.0, 10.0])
    res = corr.bucket_spearman(scores, truth, params)
    rhos = [b["spearman"] for b in res["buckets"]]
    assert math.isnan(rhos[0]) and math.isnan(rhos[1])  # one finite score; a constant pair
    assert rhos[2:] == pytest.approx([-1.0, 1.0, 1.0])
    assert res["mean"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="parameter counts"):
        corr.bucket_spearman([1.0, 2.0], [1.0, 2.0], [1.0])


def test_size_residual_removes_a_power_law_fit_on_the_selection_cells():
    params = np.linspace(0.1, 1.5, 14)
    scores = 3 * params**2
    scores[10] *= math.exp(0.5)
    scores[11] *= math.exp(-1.0)
    scores[12] = 0.0  # a dead cell
    scores[13] = NAN
    fit = np.arange(14) < 10
    res = corr.size_residual(scores, params, fit)
    assert res[:10] == pytest.approx(np.zeros(10), abs=1e-9)
    assert (res[10], res[11], res[12]) == pytest.approx((0.5, -1.0, -2.0))
    assert math.isnan(res[13])
    with pytest.raises(ValueError, match="non-negative"):
        corr.size_residual([-1.0, 2.0], [1.0, 2.0], [True, True])


def test_head_metrics_of_a_perfect_and_a_reversed_ranking():
    truth = np.linspace(50, 95, 500)
    params = np.random.default_rng(0).permutation(500).astype(float)
    best = corr.head_metrics(truth, truth, params)
    assert best["spearman"] == pytest.approx(1.0) and best["kendall"] == pytest.approx(1.0)
    assert (best["top1_precision"], best["top5_precision"], best["top10_precision"]) == (1.0, 1.0, 1.0)
    assert best["ndcg100"] == pytest.approx(1.0) and best["size_bucket_spearman"] == pytest.approx(1.0)
    assert (best["top_ranked_truth"], best["top_ranked_truth_rank"]) == (95.0, 1)
    worst = corr.head_metrics(-truth, truth)
    assert (worst["top1_precision"], worst["ndcg100"], worst["top_ranked_truth_rank"]) == (0.0, 0.0, 500)
    assert "size_bucket_spearman" not in worst  # no sizes, no within-size statistic


def random_archs(n: int) -> list[str]:
    space, rng, archs = search_spaces.get("nb201"), random.Random(11), []
    while len(archs) < n:
        arch = space.to_str(space.sample(rng))
        if arch not in archs:
            archs.append(arch)
    return archs


def test_correlate_reports_head_and_size_statistics(tmp_path: Path, monkeypatch, capsys):
    archs = random_archs(15)
    rng = random.Random(3)
    table = tmp_path / "archs.csv"
    table.write_text("arch,acc\n" + "".join(f"{a},{rng.uniform(60, 95):.3f}\n" for a in archs))
    out = tmp_path / "out"
    code, stdout, err = run_cli(monkeypatch, capsys, "correlate", "--space", "nb201", "--estimator", "flops,params",
                                "--archs-file", str(table), "--truth-column", "acc", "--dataset", "synthetic",
                                "--batch-size", "8", "--out", str(out))
    assert code == 0, err
    assert "head of the ranking" in stdout and "P@5%" in stdout and "in-size rho" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert "ndcg100" in summary["conventions"]
    cells = corr.load_cells("nb201", archs_file=table, column="acc")
    truth = np.array([c.truth for c in cells])
    params = np.array(corr.cell_params("nb201", cells, "cifar10"))
    with (out / "scores.csv").open(newline="") as fh:
        flops = np.array([float(r["flops"]) for r in csv.DictReader(fh)])
    res = summary["results"]["flops"]
    assert res["top_ranked_truth"] == truth[int(np.argmax(flops))]
    assert res["top5_precision"] == float(np.argmax(flops) == np.argmax(truth))  # 5% of 15 cells: one
    buckets = res["size_buckets"]
    assert sum(b["n"] for b in buckets) == 15 and len(buckets) == 5
    rhos = []
    for low, high in zip(buckets, buckets[1:]):
        assert low["params"][1] < high["params"][0]  # ordered, disjoint ranges of deployed params
    for b in buckets:
        inside = (params >= b["params"][0]) & (params <= b["params"][1])
        assert inside.sum() == b["n"]
        rho = spearmanr(flops[inside], truth[inside]).statistic if b["n"] > 1 else math.nan
        assert b["spearman"] == (None if math.isnan(rho) else pytest.approx(rho))
        rhos.append(rho)
    assert res["size_bucket_spearman"] == pytest.approx(np.nanmean(rhos))


def test_api_correlate_returns_the_head_statistics(tmp_path: Path):
    archs = random_archs(8)
    table = tmp_path / "archs.csv"
    table.write_text("arch,acc\n" + "".join(f"{a},{50 + i}\n" for i, a in enumerate(archs)))
    res = evonas.correlate("nb201", "params", archs_file=table, truth_column="acc", dataset="synthetic",
                           batch_size=8)["params"]
    assert {"top1_precision", "top5_precision", "ndcg100", "top_ranked_truth", "top_ranked_truth_rank",
            "size_bucket_spearman", "size_buckets"} <= res.keys()
    # the params estimator ranks the deployed sizes it is bucketed by: ties inside a bucket of one size
    assert res["top_ranked_truth_rank"] >= 1 and len(res["size_buckets"]) >= 1
