"""Command-line interface: thin commands (parse -> call the library -> print), one module per area.

Every user error becomes a one-line ``error: ...`` on stderr and exit status 2.
"""
from __future__ import annotations

import sys
import warnings

from evonas.cli import compare, correlate, export, info, latency, report, search, train, trust  # noqa: F401  (each module registers its commands)
from evonas.cli.app import app


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: object = None, line: str | None = None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main() -> None:
    """Console-script entry point with one-line errors and warnings for the user."""
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            app()
        except Exception as exc:
            from evonas.user_errors import USER_ERRORS  # names the leaf packages' errors: imports torch

            if not isinstance(exc, USER_ERRORS):
                raise
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
