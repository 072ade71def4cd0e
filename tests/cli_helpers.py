"""Running `evonas` in-process from tests and checking its one-line errors."""
from __future__ import annotations

import sys

import pytest


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """`evonas ARGV` in this process: (exit status, stdout, stderr)."""
    from evonas import cli

    monkeypatch.setattr(sys, "argv", ["evonas", *argv])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code: int, out: str, err: str, fragment: str) -> None:
    """Exit status 2 and exactly one `error: ...` line containing ``fragment``, no traceback."""
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "Traceback" not in out + err
