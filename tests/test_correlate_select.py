"""`evonas correlate` over finished folders: --table-columns, --from (one table across folders, --markdown),
the read-only archive, and --select (composites and size-aware scores chosen on half the cells)."""
from __future__ import annotations

import csv
import gzip
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli
from evonas import correlating as corr
from evonas.correlating import selection as sel
from evonas.correlating.store import ARCHIVE, STORE, Manifest
from evonas.scoring.composite import Normalisation
from test_correlate import SYNTH, nb201_table


def with_columns(path: Path, n: int) -> Path:
    """An NB-201 archs file whose rows also carry two made-up proxy columns."""
    nb201_table(path, n)
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["arch", "cifar10_test", "synflow", "zen"])
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow({**row, "synflow": 100 + i, "zen": (-1) ** i * i})
    return path


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    """One finished folder: params, grad_norm and two table columns over 8 cells (scored once per module)."""
    root = tmp_path_factory.mktemp("scored")
    archs = with_columns(root / "archs.csv", 8)
    out = root / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["evonas", "correlate", "--estimator", "params,grad_norm", "--archs-file", str(archs),
                                 "--out", str(out), "--table-columns", "synflow,zen", *SYNTH])
        from evonas import cli

        try:
            cli.main()
        except SystemExit as exc:
            assert not exc.code
    return out


def copy(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to)
    return to


def summary_results(folder: Path) -> dict:
    res = json.loads((folder / "summary.json").read_text())["results"]
    return {n: {k: v for k, v in s.items() if k not in ("seconds_per_cell", "settings", "errors")}
            for n, s in res.items()}


# ---- --table-columns ----------------------------------------------------------------
def test_table_columns_are_correlated_beside_the_estimators(scored):
    res = summary_results(scored)
    assert list(res) == ["params", "grad_norm", "table:synflow", "table:zen"]
    assert res["table:synflow"]["spearman"] == pytest.approx(1.0)  # 100, 101, ... against truth 50, 51, ...
    with (scored / "scores.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["table:zen"]) for r in rows] == [(-1) ** i * i for i in range(8)]
    assert Manifest.read(scored).table_columns["synflow"] == [100.0 + i for i in range(8)]


def test_unknown_table_column_is_one_line(tmp_path, monkeypatch, capsys):
    archs = with_columns(tmp_path / "a.csv", 3)
    assert_one_line_error(*run_cli(monkeypatch, capsys, "correlate", "--estimator", "params", "--archs-file",
                                   str(archs), "--out", str(tmp_path / "o"), "--table-columns", "synflow,nope",
                                   *SYNTH), "has no column 'nope'")


# ---- --from, --markdown, the archive --------------------------------------------------
def test_from_reports_what_the_run_reported_and_writes_markdown(scored, tmp_path, monkeypatch, capsys):
    md = tmp_path / "t.md"
    md.write_text("old table\n" + corr.report.NOTES + "\nhand-written findings\n")
    code, stdout, err = run_cli(monkeypatch, capsys, "correlate", "--from", str(scored), "--markdown", str(md))
    assert code == 0, err
    stored = corr.read_folder(scored)
    again = json.loads(json.dumps(corr.report.json_safe(corr.run_results(stored.cells, stored.runs))))
    assert {n: {k: v for k, v in s.items() if k not in ("seconds_per_cell", "settings", "errors")}
            for n, s in again.items()} == summary_results(scored)
    text = md.read_text()
    assert f"evonas correlate --from {scored} --markdown {md}" in text
    assert "old table" not in text and text.endswith("hand-written findings\n")
    assert f"| nb201: {scored.parent.name}/run (8) | `table:synflow` | 8/8 |" in text


def test_from_several_folders_gives_one_table(scored, tmp_path, monkeypatch, capsys):
    other = copy(scored, tmp_path / "other")
    md = tmp_path / "t.md"
    code, _, err = run_cli(monkeypatch, capsys, "correlate", "--from", str(scored), "--from", str(other),
                           "--markdown", str(md))
    assert code == 0, err
    rows = [line for line in md.read_text().splitlines() if line.startswith("| nb201")]
    assert len(rows) == 8 and sum("/other (8)" in r for r in rows) == 4
    assert rows[0].split("|")[3:] == rows[4].split("|")[3:]  # same scores, same numbers


def test_archive_is_read_like_the_store_and_never_rescored(scored, tmp_path, monkeypatch, capsys):
    folder = copy(scored, tmp_path / "archived")
    with gzip.open(folder / ARCHIVE, "wt") as fh:
        fh.write((folder / STORE).read_text())
    (folder / STORE).unlink()
    assert corr.read_folder(folder).runs[1].scores == corr.read_folder(scored).runs[1].scores
    assert_one_line_error(*run_cli(monkeypatch, capsys, "correlate", "--estimator", "params,grad_norm",
                                   "--archs-file", str(scored.parent / "archs.csv"), "--out", str(folder), *SYNTH),
                          "already holds a correlate run")


def test_from_errors_are_one_line(scored, tmp_path, monkeypatch, capsys):
    shard = tmp_path / "shard"
    code, _, err = run_cli(monkeypatch, capsys, "correlate", "--estimator", "params", "--archs-file",
                           str(scored.parent / "archs.csv"), "--out", str(shard), "--shard", "0/2", *SYNTH)
    assert code == 0, err
    for argv, fragment in [(("--from", str(shard)), "merge the shards with --merge first"),
                           (("--from", str(tmp_path)), "has no correlate.json"),
                           (("--select",), "pass them with --from DIR"),
                           (("--composites", "a+b"), "pass them with --from DIR"),
                           (("--from", str(scored), "--select", "--select-parts", "1"), "at least 2")]:
        assert_one_line_error(*run_cli(monkeypatch, capsys, "correlate", *argv), fragment)


# ---- selection --------------------------------------------------------------------------
def test_composite_specs_count_and_weights():
    assert sel.composite_specs(["a", "b"]) == ["a+b", "a+b=2", "a=2+b"]
    assert len(sel.composite_specs(list("abcd"), 3)) == 6 * 3 + 4 * 7
    assert len(sel.composite_specs(list("ab"), 2, (1.0,))) == 1


def test_split_halves_keeps_groups_together_and_is_seeded():
    groups = ["x", "x", "y", "z", "z", "w"]
    a, b = sel.split_halves(groups, 0), sel.split_halves(groups, 0)
    assert (a == b).all() and a[0] == a[1] and a[3] == a[4]
    assert len({g for g, s in zip(groups, a) if s}) == 2  # half of the 4 classes


def test_order_by_head_mean_rank_then_fewer_parts():
    stats = {"a+b": {"x": 2.0, "y": 1.0}, "a": {"x": 1.0, "y": 2.0}, "b": {"x": 0.0, "y": None}}
    assert sel.order_by_head(stats, ("x", "y")) == ["a", "a+b", "b"]


def small_problem(n: int = 40):
    rng = np.random.default_rng(0)
    truth = np.arange(n, dtype=float)
    params = rng.uniform(1, 2, n)
    a = truth + rng.normal(0, 8, n)
    b = truth + rng.normal(0, 8, n)
    columns = {"snip": a - a.min() + 1, "grad_norm": b - b.min() + 1, "params": params}
    norms = {k: Normalisation.from_scores(k, list(v[:20])) for k, v in columns.items()}
    return columns, truth, params, norms


def test_select_fitness_reports_library_composites_on_the_other_half():
    columns, truth, params, norms = small_problem()
    groups = [str(i) for i in range(len(truth))]
    out = sel.select_fitness(columns, truth, params, groups, norms, {k: {} for k in columns}, splits=3,
                             fixed=["snip+grad_norm=0.5"])
    assert out["selection_cells"] == out["report_cells"] == 20
    names = [r["name"] for r in out["rows"]]
    assert {"snip", "grad_norm", "params", "snip after params", "grad_norm after params"} <= set(names)
    assert out["candidates"] == 3 + 2 + 3 * 3  # singles, residuals, 3 pairs x 3 weightings
    report = ~sel.split_halves(groups, 0)
    for row in out["rows"]:
        if "+" in row["name"]:  # a composite's report numbers are Composite.combine's
            col = sel.library_composite(row["name"], columns, {k: {} for k in columns}, norms)
            assert row["spearman"] == pytest.approx(corr.spearman(col[report], truth[report]))
    assert [len(v) for v in out["splits"].values()] == [3, 3, 3, 3]
    fixed = next(r for r in out["rows"] if r["name"] == "snip+grad_norm=0.5")  # not a candidate, measured beside
    assert fixed["tag"] == "fixed" and fixed["head_rank"] is None
    assert {p["name"] for p in out["splits"]["snip+grad_norm=0.5 (fixed)"]} == {"snip+grad_norm=0.5"}
    assert out["selected"] == out["rows"][0]["name"] and out["rows"][0]["head_rank"] == 1


def test_library_composite_is_the_sum_of_normalised_parts_and_fails_with_a_part():
    columns, _, _, norms = small_problem(6)
    columns["snip"][2] = math.nan
    col = sel.library_composite("snip+grad_norm=2", columns, {"snip": {}, "grad_norm": {}}, norms)
    assert math.isnan(col[2])
    assert col[0] == pytest.approx(norms["snip"](columns["snip"][0]) + 2 * norms["grad_norm"](columns["grad_norm"][0]))


def test_select_on_a_folder_uses_the_manifests_normalisation(scored, tmp_path, monkeypatch, capsys):
    folder = copy(scored, tmp_path / "sel")
    manifest = Manifest.read(folder)
    stored = corr.read_folder(folder)
    manifest.data["normalisation"] = {f"{r.name}@0": Normalisation.from_scores(r.name, r.scores).to_dict()
                                      for r in stored.runs if not r.name.startswith("table:")}
    manifest.write(folder)
    md = tmp_path / "s.md"
    code, stdout, err = run_cli(monkeypatch, capsys, "correlate", "--from", str(folder), "--select",
                                "--select-splits", "2", "--markdown", str(md))
    assert code == 0, err
    assert "selected on" in stdout
    text = md.read_text()
    assert "### Selection on" in text and "| head objective |" in text and "`params+grad_norm" in text


def test_resume_keeps_the_import_record_and_normalisation(scored, tmp_path, monkeypatch, capsys):
    folder = copy(scored, tmp_path / "imported")
    manifest = Manifest.read(folder)
    manifest.data["record"]["imported_from"] = {"files": "old.csv"}
    manifest.data["normalisation"] = {"params@0": {"transform": "asinh", "center": 1.0, "scale": 1.0, "unit": 1.0}}
    manifest.write(folder)
    lines = (folder / STORE).read_text()
    code, _, err = run_cli(monkeypatch, capsys, "correlate", "--estimator", "params,grad_norm", "--archs-file",
                           str(scored.parent / "archs.csv"), "--out", str(folder), "--table-columns", "synflow,zen",
                           "--resume", *SYNTH)
    assert code == 0, err
    again = Manifest.read(folder)
    assert again.data["record"]["imported_from"] == {"files": "old.csv"}
    assert again.data["normalisation"] == manifest.data["normalisation"]
    assert (folder / STORE).read_text() == lines and again.params == manifest.params  # nothing re-scored


def test_composites_are_computed_from_the_stored_parts(scored, tmp_path, monkeypatch, capsys):
    folder = copy(scored, tmp_path / "comp")
    stored = corr.read_folder(folder)
    norms = {r.name: Normalisation.from_scores(r.name, r.scores) for r in stored.runs if not r.name.startswith("t")}
    manifest = Manifest.read(folder)
    manifest.data["normalisation"] = {f"{n}@0": v.to_dict() for n, v in norms.items()}
    manifest.write(folder)
    runs, skipped = corr.composite_runs(corr.read_folder(folder), ["params+grad_norm=2", "params+snip"])
    assert skipped == ["params+snip"] and [r.name for r in runs] == ["params+grad_norm=2"]
    by = {r.name: r.scores for r in stored.runs}
    assert runs[0].scores == pytest.approx([norms["params"](a) + 2 * norms["grad_norm"](b)
                                            for a, b in zip(by["params"], by["grad_norm"])])
    md = tmp_path / "c.md"
    code, stdout, err = run_cli(monkeypatch, capsys, "correlate", "--from", str(folder), "--composites",
                                "params+grad_norm=2,params+snip", "--markdown", str(md))
    assert code == 0, err
    assert "skipped params+snip" in stdout and "`params+grad_norm=2` | 8/8 |" in md.read_text()


def test_selection_stats_are_head_metrics():
    columns, truth, params, _ = small_problem()
    fast = sel.selection_stats(columns["snip"], truth, params, corr.size_buckets(params))
    full = corr.head_metrics(columns["snip"], truth, params)
    assert fast == {k: full[k] for k in fast} and set(sel.CRITERIA) < set(fast)
