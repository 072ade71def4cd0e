"""``evonas report``: one self-contained HTML page about a run."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from evonas.cli.app import app, say


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder written by `evonas search` (finished or not)."),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default: RUN_DIR/report.html)."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="The space's benchmark table (any space with one): add the top cells' true accuracies."),
) -> None:
    """Write one self-contained HTML page: settings, best-score curve, histogram, top cells with diagrams, trainings."""
    from evonas.reporting import write_report

    say(f"wrote {write_report(run_dir, out, truth)}")
