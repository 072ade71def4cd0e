"""The Typer application and the console every command prints to."""
from __future__ import annotations

import typer

from evonas.progress import console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Evolutionary neural architecture search scored by zero-cost estimators (Sweetimator by default).",
)


def say(text: str) -> None:
    """Print plain text (no rich markup or highlighting), wrapped softly."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the evonas version and exit."),
) -> None:
    """Evolutionary NAS scored by zero-cost estimators."""
    if version:
        from evonas.version import __version__

        print(__version__)
        raise typer.Exit()
