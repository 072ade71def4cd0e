"""`evonas data`: finds a dataset and reports it; a missing one is a one-line error."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    from evonas import cli

    monkeypatch.setattr(sys, "argv", ["evonas", *argv])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_data_reports_the_shared_cifar10(monkeypatch, capsys, cifar_dir: Path) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "data", "cifar10", "--data-dir", str(cifar_dir))
    assert code == 0, err
    assert "10,000" in out and "cifar-10-batches-py" in out
    assert "Traceback" not in err


def test_data_synthetic_is_labelled(monkeypatch, capsys) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "data", "synthetic")
    assert code == 0 and "synthetic" in out


def test_missing_data_without_download_is_one_line(monkeypatch, capsys, tmp_path: Path) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "data", "cifar10", "--data-dir", str(tmp_path), "--no-download")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert str(tmp_path) in lines[0] and "--data-dir" in lines[0]
