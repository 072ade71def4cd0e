"""`evonas data`: finds a dataset and reports it; a missing one is a one-line error."""
from __future__ import annotations

from pathlib import Path

from cli_helpers import run_cli


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
