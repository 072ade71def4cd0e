"""``evonas compare``: several search runs against their space's benchmark table (seeds of a benchmark)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from evonas.cli.app import app, say
from evonas.cli.search import parse_budgets


@app.command("compare")
def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="Run folders written by `evonas search` (e.g. the seeds of one setup)."),
    truth: Path = typer.Option(..., "--truth", help="The space's benchmark table (true accuracies of its cells)."),
    budgets: Optional[list[str]] = typer.Option(None, "--budgets", help="Cost budgets of the fronts' regret, COST=V1,V2,... (e.g. params=0.2M,0.6M,1.6M); repeat per cost. (default: six spread over the table's range)"),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Also write the tables to this markdown file."),
    title: str = typer.Option("Search runs against the table", "--title", help="Heading of the markdown file."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of markdown."),
) -> None:
    """True accuracy of the cell each run returned, its gap to the best feasible table cell, and each
    front's regret per budget and hypervolume ratio, with the mean and worst over the runs."""
    from evonas.comparing import compare_runs, comparison_markdown

    result = compare_runs(runs, truth, parse_budgets(budgets or []))
    text = comparison_markdown(result, title)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text)
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        print(text, end="")
        if markdown is not None:
            say(f"wrote {markdown}")
