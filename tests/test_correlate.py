"""`evonas correlate`: statistics against hand-computed values, IO, end-to-end runs, bad input."""
from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

from typing import Iterator

import numpy as np
import pytest
from scipy.stats import rankdata

import estimators
import search_spaces
from cli_helpers import run_cli
from estimators.base import Estimator
from evonas import correlating as corr
from evonas.errors import EvonasError
from evonas.scoring import resolve as scoring_resolve
from search_spaces import GenotypeError
from search_spaces.benchmark import BenchmarkTable, Cell
from search_spaces.errors import BenchmarkError

NAN = math.nan


# ---- statistics (hand-computed) ------------------------------------------------------
def test_spearman_hand_computed_with_ties():
    # truth ranks with the tie averaged: [1, 2, 3.5, 5, 3.5]; Pearson of ranks = 8 / sqrt(10 * 9.5)
    assert corr.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    assert corr.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert corr.spearman([4, 3, 2, 1], [10, 20, 30, 40]) == pytest.approx(-1.0)


def test_kendall_hand_computed():
    # one discordant pair (2nd, 3rd) out of 6: (5 - 1) / 6
    assert corr.kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)


def test_failed_scores_are_left_out_of_every_statistic():
    scores = [1.0, NAN, 3.0, 2.0, math.inf]
    truth = [1.0, 100.0, 3.0, 2.0, -5.0]  # the failed cells would ruin perfect agreement
    assert corr.spearman(scores, truth) == pytest.approx(1.0)
    assert corr.kendall(scores, truth) == pytest.approx(1.0)
    stats = corr.summarize(scores, truth, [0.5, 1.0, 0.5, 0.5, 1.0])
    assert (stats["n"], stats["scored"], stats["failed"]) == (5, 3, 2)
    assert stats["top10_precision"] == 1.0
    assert stats["seconds_per_cell"] == pytest.approx(0.7)


def test_statistics_undefined_are_nan():
    assert math.isnan(corr.spearman([NAN, NAN, 1.0], [1, 2, 3]))  # one valid cell
    assert math.isnan(corr.spearman([2.0, 2.0, 2.0], [1, 2, 3]))  # constant scores
    assert math.isnan(corr.top_precision([NAN], [1.0]))


def test_top_k_sizes():
    assert [corr.top_k(n) for n in (1000, 300, 50, 15, 5)] == [100, 30, 5, 2, 1]


def test_top_precision_hand_computed():
    truth = list(range(20, 0, -1))  # cell 0 best, cell 19 worst; true top-2 = {0, 1}
    scores = [100, 0, 99, *range(3, 20)]  # estimator's top-2 = {0, 2}
    assert corr.top_precision(scores, truth) == 0.5
    assert corr.top_precision(truth, truth) == 1.0
    assert corr.top_precision([-t for t in truth], truth) == 0.0
    # top 25% of 8 = 2 cells; estimator's top-2 = {6, 7}, true top-2 = {7, 5}
    assert corr.top_precision([0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 9, 5, 10], fraction=0.25) == 0.5


def test_top_precision_ties_break_by_position():
    # all scores tie: the estimator's top-1 is the first cell; the true best is the last
    assert corr.top_precision([1.0] * 10, list(range(10))) == 0.0
    assert corr.top_precision([1.0] * 10, list(range(10, 0, -1))) == 1.0


# ---- reading cells -------------------------------------------------------------------
def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _read_cells(path: Path, column: str) -> list[Cell]:
    return search_spaces.get("nb201").benchmark(path).cells(column)


def test_read_cells_accepts_arch_or_genotype_column(tmp_path):
    a = _write_csv(tmp_path / "a.csv", ["arch", "acc"], [["x", "1.5"], ["y", "2"]])
    g = _write_csv(tmp_path / "g.csv", ["id", "genotype", "acc"], [[0, "x", "1.5"]])
    assert _read_cells(a, "acc") == [Cell("x", 1.5), Cell("y", 2.0)]
    assert _read_cells(g, "acc") == [Cell("x", 1.5)]


@pytest.mark.parametrize(
    "header, rows, column, message",
    [
        (["name", "acc"], [["x", "1"]], "acc", "lacks the column(s) arch (or genotype)"),
        (["arch", "acc"], [["x", "1"]], "cifar10_test", "lacks the column(s) cifar10_test"),
        (["arch", "acc"], [["x", "1"], ["y", "high"]], "acc", "line 3: accuracy 'high'"),
        (["arch", "acc"], [["x", "nan"]], "acc", "line 2: accuracy 'nan' in column acc is not finite"),
        (["arch", "acc"], [], "acc", "has no data rows"),
    ],
)
def test_read_cells_bad_files(tmp_path, header, rows, column, message):
    path = _write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(BenchmarkError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _read_cells(path, column)


def test_read_cells_missing_file(tmp_path):
    with pytest.raises(BenchmarkError, match="not found"):
        _read_cells(tmp_path / "absent.csv", "acc")


class _OnlyAB:
    """A stand-in space whose only genotypes are 'a' and 'b'."""

    name = "ab"
    genotype_of_row = search_spaces.SearchSpace.genotype_of_row  # the default: an arch or genotype column
    genotype_columns = search_spaces.SearchSpace.genotype_columns

    def from_str(self, s: str) -> str:
        if s not in ("a", "b"):
            raise GenotypeError(f"unknown cell {s!r}")
        return s


def test_check_genotypes_names_the_bad_row(tmp_path):
    table = BenchmarkTable.read(_OnlyAB(), _write_csv(tmp_path / "f.csv", ["arch", "acc"], [["a", 1], ["zz", 2]]))
    cells = [Cell("a", 1), Cell("b", 2), Cell("zz", 3)]
    with pytest.raises(BenchmarkError, match="f.csv data row 3: 'zz' is not a valid ab genotype"):
        table.check_genotypes(cells)
    table.check_genotypes(cells[:2])


def test_sample_cells_is_seeded_and_bounded():
    cells = [Cell(str(i), float(i)) for i in range(50)]
    first = corr.sample_cells(cells, 10, seed=3)
    assert first == corr.sample_cells(cells, 10, seed=3)
    assert first != corr.sample_cells(cells, 10, seed=4)
    assert len(set(first)) == 10
    with pytest.raises(EvonasError, match="--sample 51 is larger than the table \\(50 cells\\)"):
        corr.sample_cells(cells, 51, seed=0)
    with pytest.raises(EvonasError, match="at least 1"):
        corr.sample_cells(cells, 0, seed=0)


# ---- end to end (synthetic data, small networks' params) -----------------------------
def nb201_table(path: Path, n: int, column: str = "cifar10_test", arch_col: str = "arch") -> Path:
    """``n`` distinct random NB-201 genotypes with made-up accuracies 50, 51, ..."""
    space, rng, archs = search_spaces.get("nb201"), random.Random(7), []
    while len(archs) < n:
        arch = space.to_str(space.sample(rng))
        if arch not in archs:
            archs.append(arch)
    return _write_csv(path, [arch_col, column], [[a, 50 + i] for i, a in enumerate(archs)])


def read_scores(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


SYNTH = ("--dataset", "synthetic", "--batch-size", "8")


def test_correlate_end_to_end_writes_csv_json_png(tmp_path, monkeypatch, capsys):
    truth = nb201_table(tmp_path / "truth.csv", 10)
    out = tmp_path / "out"
    code, stdout, err = run_cli(monkeypatch, capsys, "correlate", "--space", "nb201", "--estimator", "params,flops",
                                "--truth", str(truth), "--sample", "6", "--seed", "3", "--out", str(out), *SYNTH)
    assert code == 0, err
    rows = read_scores(out / "scores.csv")
    expected = corr.sample_cells(_read_cells(truth, "cifar10_test"), 6, seed=3)
    assert [(r["arch"], float(r["truth"])) for r in rows] == [(c.arch, c.truth) for c in expected]
    assert list(rows[0]) == ["arch", "truth", "params", "flops"]
    summary = json.loads((out / "summary.json").read_text())
    truths = [float(r["truth"]) for r in rows]
    for name in ("params", "flops"):
        scores = [float(r[name]) for r in rows]
        assert all(s > 0 for s in scores)
        res = summary["results"][name]
        assert (res["n"], res["failed"]) == (6, 0)
        # independent of the implementation: Pearson of the ranks, and pair counting
        assert res["spearman"] == pytest.approx(np.corrcoef(rankdata(scores), rankdata(truths))[0, 1])
        assert res["kendall"] == pytest.approx(_kendall_by_pairs(scores, truths))
        best_truth = truths.index(max(truths))
        assert res["top10_precision"] == float(scores.index(max(scores)) == best_truth)  # top-1 of 6 cells
        assert (out / f"scatter_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"{res['spearman']:.3f}" in stdout
    settings = summary["settings"]
    assert (settings["n"], settings["seed"], settings["batch_size"], settings["dataset"]) == (6, 3, 8, "synthetic")
    assert settings["data"]["synthetic"] is True
    assert set(summary["versions"]) >= {"evonas", "torch", "scipy"}


class _EveryOtherFails(Estimator):
    """Test estimator: the parameter count, NaN on every second call."""

    name = "test_every_other_fails"
    needs_data = False
    calls = 0

    def score(self, model, batches, depth_units=None):
        type(self).calls += 1
        return math.nan if type(self).calls % 2 == 0 else sum(p.numel() for p in model.parameters())


def _kendall_by_pairs(a: list[float], b: list[float]) -> float:
    """Kendall tau-b by counting concordant, discordant and tied pairs."""
    def sign(x: float) -> int:
        return (x > 0) - (x < 0)

    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    net = sum(sign(a[i] - a[j]) * sign(b[i] - b[j]) for i, j in pairs)
    ties_a = sum(a[i] == a[j] for i, j in pairs)
    ties_b = sum(b[i] == b[j] for i, j in pairs)
    return net / math.sqrt((len(pairs) - ties_a) * (len(pairs) - ties_b))


@pytest.fixture
def every_other_fails(monkeypatch) -> Iterator[str]:
    monkeypatch.setattr(_EveryOtherFails, "calls", 0)
    with estimators.registered(_EveryOtherFails):
        yield _EveryOtherFails.name


def test_failed_cells_are_counted_and_excluded(tmp_path, monkeypatch, capsys, every_other_fails):
    truth = nb201_table(tmp_path / "truth.csv", 6)
    out = tmp_path / "out"
    code, stdout, err = run_cli(monkeypatch, capsys, "correlate", "--estimator", _EveryOtherFails.name,
                                "--truth", str(truth), "--sample", "6", "--out", str(out), *SYNTH)
    assert code == 0, err
    rows = read_scores(out / "scores.csv")
    scores = [float(r[_EveryOtherFails.name]) for r in rows]
    assert [math.isnan(s) for s in scores] == [False, True] * 3
    res = json.loads((out / "summary.json").read_text())["results"][_EveryOtherFails.name]
    assert (res["failed"], res["scored"]) == (3, 3)
    assert "non-finite score" in res["errors"][0]
    kept = [(s, float(r["truth"])) for s, r in zip(scores, rows) if not math.isnan(s)]
    assert res["spearman"] == pytest.approx(corr.spearman(*zip(*kept)))
    assert "3/6" in stdout


def test_sweet_family_gets_the_interval_override(tmp_path, monkeypatch, capsys):
    archs = nb201_table(tmp_path / "archs.csv", 3)
    out = tmp_path / "out"
    code, stdout, err = run_cli(monkeypatch, capsys, "correlate", "--estimator", "sweet", "--archs-file", str(archs),
                                "--interval", "1e-4", "5e-4", "--out", str(out), *SYNTH)
    assert code == 0, err
    res = json.loads((out / "summary.json").read_text())["results"]["sweet"]
    assert res["settings"]["interval"] == [1e-4, 5e-4]
    assert res["failed"] == 0
    assert "[0.0001, 0.0005)" in stdout


def test_sweet_family_interval_comes_from_resolve_interval(tmp_path, monkeypatch, capsys):
    asked = []

    def fake_resolve(space, dataset, data_dir, batch_size, seed, override=None, progress=None, data=None):
        asked.append((space, dataset, batch_size, seed, override))
        return (1e-3, 5e-3)

    monkeypatch.setattr(scoring_resolve, "resolve_interval", fake_resolve)
    archs = nb201_table(tmp_path / "archs.csv", 2)
    out = tmp_path / "out"
    code, _, err = run_cli(monkeypatch, capsys, "correlate", "--estimator", "params,sweet_snip,sweet_ntk",
                           "--archs-file", str(archs), "--seed", "5", "--out", str(out), *SYNTH)
    assert code == 0, err
    assert asked == [("nb201", "synthetic", 8, 5, None)] * 2  # once per Sweetimator variant, none for params
    results = json.loads((out / "summary.json").read_text())["results"]
    assert results["sweet_snip"]["settings"]["interval"] == results["sweet_ntk"]["settings"]["interval"] == [1e-3, 5e-3]
    assert results["params"]["settings"] == {}


def test_archs_file_scores_every_row_in_order(tmp_path, monkeypatch, capsys):
    archs = nb201_table(tmp_path / "archs.csv", 4, column="acc", arch_col="genotype")
    out = tmp_path / "out"
    code, _, err = run_cli(monkeypatch, capsys, "correlate", "--estimator", "params", "--archs-file", str(archs),
                           "--truth-column", "acc", "--out", str(out), *SYNTH)
    assert code == 0, err
    rows = read_scores(out / "scores.csv")
    assert [r["arch"] for r in rows] == [c.arch for c in _read_cells(archs, "acc")]
    assert [float(r["truth"]) for r in rows] == [50.0, 51.0, 52.0, 53.0]


def test_archs_file_with_darts_genotypes(tmp_path, monkeypatch, capsys):
    space, rng = search_spaces.get("darts"), random.Random(1)
    archs = _write_csv(tmp_path / "darts.csv", ["arch", "cifar10_test"],
                       [[space.to_str(space.sample(rng)), 97.0 + i / 10] for i in range(3)])
    out = tmp_path / "out"
    code, _, err = run_cli(monkeypatch, capsys, "correlate", "--space", "darts", "--estimator", "params",
                           "--archs-file", str(archs), "--out", str(out), *SYNTH)
    assert code == 0, err
    rows = read_scores(out / "scores.csv")
    assert len(rows) == 3 and all(float(r["params"]) > 0 for r in rows)


def test_params_ranks_nb201_cells_clearly_positive(nb201_truth):
    """params is data-free: on 50 random cells its Spearman against 200-epoch accuracy is > 0.5."""
    cells = corr.load_cells("nb201", truth=nb201_truth, sample=50, seed=0)
    settings = corr.CorrelateSettings("nb201", ("params",), seed=0, dataset="synthetic", batch_size=8)
    runs, _ = corr.correlate(cells, settings)
    stats = runs[0].stats(cells)
    assert stats["failed"] == 0
    assert stats["spearman"] > 0.5


# ---- bad input: one line, exit 2 -----------------------------------------------------
@pytest.fixture
def table(tmp_path) -> Path:
    return nb201_table(tmp_path / "truth.csv", 5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--estimator", "params,nope", "--sample", "2"], "unknown estimator 'nope'"),
        (["--estimator", "params", "--sample", "6"], "--sample 6 is larger than the table (5 cells)"),
        (["--estimator", "params"], "--truth needs --sample N"),
        (["--estimator", "params", "--sample", "2", "--truth-column", "top1"], "lacks the column(s) top1"),
        (["--estimator", "params", "--sample", "2", "--executor", "local", "--workers", "2"], "need the Ray executor"),
    ],
)
def test_bad_input_is_one_error_line(table, tmp_path, monkeypatch, capsys, argv, message):
    code, _, err = run_cli(monkeypatch, capsys, "correlate", "--truth", str(table), "--out", str(tmp_path / "o"),
                           *SYNTH, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert message in err


def test_missing_truth_file_and_source_choice(tmp_path, monkeypatch, capsys):
    for argv, message in [
        (["--truth", str(tmp_path / "absent.csv"), "--sample", "2"], "absent.csv not found"),
        (["--sample", "2"], "pass exactly one of --truth"),
    ]:
        code, _, err = run_cli(monkeypatch, capsys, "correlate", "--estimator", "params", *SYNTH, *argv)
        assert (code, err.count("\n")) == (2, 1) and err.startswith("error: ")
        assert message in err


def test_malformed_genotype_in_archs_file_names_the_row(tmp_path, monkeypatch, capsys):
    path = nb201_table(tmp_path / "archs.csv", 3)
    lines = path.read_text().splitlines()
    lines[2] = "|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|,51"
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(monkeypatch, capsys, "correlate", "--estimator", "params", "--archs-file", str(path),
                           *SYNTH)
    assert (code, err.count("\n")) == (2, 1)
    assert "data row 2: '|conv_9x9~0|" in err and "not a valid nb201 genotype" in err
