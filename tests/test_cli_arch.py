"""`evonas arch`: cell view, canonical key, parameter count, NB-201 accuracies and one-line errors."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli

ROOT = Path(__file__).resolve().parents[1]
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DARTS_V2 = (
    "normal=sep3~0,sep3~1|sep3~0,sep3~1|sep3~1,skip~0|skip~0,dil3~2;"
    "reduce=max3~0,max3~1|skip~2,max3~1|max3~0,skip~2|skip~2,max3~1"
)


def test_nb201_cell_with_exact_truth(monkeypatch, capsys, nb201_truth: Path) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "arch", ALL_CONV3, "--space", "nb201", "--truth", str(nb201_truth))
    assert code == 0
    row = next(r for r in csv.DictReader(nb201_truth.open()) if r["arch"] == ALL_CONV3)
    assert "node 3 = nor_conv_3x3(node 0) + nor_conv_3x3(node 1) + nor_conv_3x3(node 2)" in out
    assert f"canonical key: {row['iso_class']}" in out
    assert "parameters: 1,531,546 " in out
    assert "matched by exact genotype" in out
    for column in ("cifar10_test", "cifar100_test", "imagenet16_test"):
        assert f"{column:<16} {float(row[column]):.2f}" in out


def test_nb201_truth_falls_back_to_an_isomorphic_row(monkeypatch, capsys, tmp_path: Path) -> None:
    other = "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|"
    table = tmp_path / "t.csv"
    table.write_text(f"arch,cifar10_test,cifar100_test,imagenet16_test\n{other},91.5,70.25,40.125\n")
    cell = "|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|none~2|"  # also just x at the output
    code, out, _ = run_cli(monkeypatch, capsys, "arch", cell, "--truth", str(table), "--classes", "100")
    assert code == 0
    assert f"matched by isomorphic cell {other}" in out and "91.50" in out and "70.25" in out
    assert "(evaluation network, 100 classes)" in out


def test_nb201_cell_missing_from_the_table(monkeypatch, capsys, tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text(f"arch,cifar10_test,cifar100_test,imagenet16_test\n{ALL_CONV3},1,2,3\n")
    code, out, _ = run_cli(monkeypatch, capsys, "arch", ALL_CONV3.replace("nor_conv_3x3~2", "none~2"),
                           "--truth", str(table))
    assert code == 0 and "neither this cell nor an isomorphic one" in out


def test_darts_cell_in_both_text_forms(monkeypatch, capsys) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "arch", DARTS_V2, "--space", "darts")
    assert code == 0
    assert "reduction cell" in out and "node 5 = skip_connect(node 0) + dil_conv_3x3(node 2)" in out
    evaluation = next(line for line in out.splitlines() if "evaluation network" in line)
    count = int(evaluation.split()[1].replace(",", ""))
    assert 3.2e6 <= count <= 3.4e6
    assert "scoring proxy, channels=16, layers=8" in out
    import search_spaces

    darts_text = search_spaces.get("darts").to_darts_str(search_spaces.get("darts").from_str(DARTS_V2))
    code2, out2, _ = run_cli(monkeypatch, capsys, "arch", darts_text, "--space", "darts")
    assert code2 == 0 and out2 == out


@pytest.mark.parametrize("argv,fragment", [
    (["arch", ALL_CONV3, "--space", "nas101"], "unknown search space 'nas101'"),
    (["arch", "|nor_conv_3x3~0|+|none~0|", "--space", "nb201"], "3 node groups"),
    (["arch", DARTS_V2.replace("sep3~0", "zero~0", 1), "--space", "darts"], "unknown op 'zero'"),
    (["arch", ALL_CONV3, "--truth", "/no/such/table.csv"], "/no/such/table.csv not found"),
    (["arch", DARTS_V2, "--space", "darts", "--truth", "x.csv"], "needs a space with a benchmark table; darts declares none"),
])
def test_bad_input_gives_one_error_line(monkeypatch, capsys, argv: list[str], fragment: str) -> None:
    assert_one_line_error(*run_cli(monkeypatch, capsys, *argv), fragment)


def test_truth_table_without_accuracy_columns(monkeypatch, capsys, tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text(f"arch,acc\n{ALL_CONV3},1\n")
    assert_one_line_error(*run_cli(monkeypatch, capsys, "arch", ALL_CONV3, "--truth", str(table)),
                          "lacks the column(s) cifar10_test")


def test_console_script_error_is_one_line() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "evonas.cli", "arch", "|bad|", "--space", "nb201"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert_one_line_error(res.returncode, res.stdout, res.stderr, "NB-201 genotype")
