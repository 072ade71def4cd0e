"""Command-line interface: one thin function per subcommand (parse -> library -> print).

Every user error becomes a one-line ``error: ...`` on stderr and exit status 2.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from evonas.errors import USER_ERRORS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Evolutionary neural architecture search scored by zero-cost estimators (Sweetimator by default).",
)
console = Console()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the evonas version and exit."),
) -> None:
    """Evolutionary NAS scored by zero-cost estimators."""
    if version:
        from evonas import __version__

        print(__version__)
        raise typer.Exit()


@app.command()
def spaces() -> None:
    """List the search spaces: name, number of cells and op set."""
    import search_spaces

    table = Table("space", "cells", "ops", "description")
    for name, cls in search_spaces.available().items():
        space = cls()
        size = space.size()
        table.add_row(name, f"{size:,}" if size else "-", ", ".join(space.ops), space.description)
    console.print(table)


def main() -> None:
    """Console-script entry point with one-line errors for bad input."""
    try:
        app()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
