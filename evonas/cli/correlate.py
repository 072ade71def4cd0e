"""``evonas correlate``: rank consistency of estimators against trained accuracy."""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from evonas.cli.app import app, console, say
from evonas.settings import DEFAULT_BATCH_SIZE, DEFAULT_DATASET, DEFAULT_ESTIMATOR, DEFAULT_SPACE, EXECUTOR_KINDS


def _num(value: float | None, digits: int = 3) -> str:
    """A statistic for the table; ``-`` where it is undefined (null in summary.json)."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


@app.command("correlate")
def correlate_cmd(
    space: str = typer.Option(DEFAULT_SPACE, "--space", help="Search space of the cells."),
    estimator: str = typer.Option(DEFAULT_ESTIMATOR, "--estimator", help="Comma-separated estimator names or composites (A+B, weights as B=0.5), e.g. sweet,synflow,sweet_snip+sweet_ntk+jacov."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Benchmark table (arch + accuracy columns) to sample cells from."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Number of seeded-random cells to score (required with --truth)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the cell sample, weight init and batches."),
    archs_file: Optional[Path] = typer.Option(None, "--archs-file", help="CSV of genotype strings (arch or genotype column) with an accuracy column; any space."),
    truth_column: str = typer.Option("cifar10_test", "--truth-column", help="Accuracy column of --truth / --archs-file."),
    dataset: str = typer.Option(DEFAULT_DATASET, "--dataset", help="Dataset the estimators see."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder (default $EVONAS_DATA or the user cache)."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Images per estimator batch."),
    interval: Optional[tuple[float, float]] = typer.Option(None, "--interval", help="Sweet-family gradient interval LO HI (default: calibrated)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default runs/correlate-<time>/)."),
    executor: str = typer.Option(EXECUTOR_KINDS[0], "--executor", help="local (in this process) or ray (a pool of workers)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Ray workers (default: one per CPU)."),
) -> None:
    """Rank consistency of estimators against true accuracy, whole ranking and head.

    Spearman, Kendall, precision of the top 1/5/10%, nDCG@100, the true accuracy of the
    top-ranked cell (and its true rank), and Spearman within parameter-count quintiles.
    """
    from evonas import correlating as corr
    from evonas.progress import counted
    from evonas.scoring import parse_estimators

    names = parse_estimators(estimator)
    cells = corr.load_cells(space, truth=truth, archs_file=archs_file, sample=sample, seed=seed, column=truth_column)
    settings = corr.CorrelateSettings(
        space=space, estimators=tuple(names), seed=seed, dataset=dataset,
        data_dir=str(data_dir) if data_dir else None, batch_size=batch_size, interval=interval,
    )
    out = out or Path("runs") / time.strftime("correlate-%Y%m%d-%H%M%S")
    with counted() as bar:
        tasks = {name: bar.add_task(f"scoring {name}", total=len(cells)) for name in names}
        calibrating = bar.add_task("calibrating the Sweetimator interval", visible=False)
        runs, data = corr.correlate(
            cells, settings, progress=lambda name, _i: bar.advance(tasks[name]), executor=executor, workers=workers,
            calibration_progress=lambda done, total: bar.update(calibrating, completed=done, total=total,
                                                                visible=done < total),
        )
    record = {
        **dataclasses.asdict(settings), "n": len(cells), "data": data, "truth": str(truth) if truth else None,
        "archs_file": str(archs_file) if archs_file else None, "truth_column": truth_column, "sample": sample,
        "executor": executor, "workers": workers,
    }
    summary = corr.write_outputs(out, cells, runs, record)
    ranking = Table("estimator", "scored", "spearman", "kendall", "in-size rho", "s/cell", title="whole ranking")
    head = Table("estimator", "P@1%", "P@5%", "P@10%", f"nDCG@{corr.NDCG_K}", "top-ranked acc.", "its rank",
                 title="head of the ranking")
    for name, res in summary["results"].items():
        ranking.add_row(name, f"{res['scored']}/{res['n']}", _num(res["spearman"]), _num(res["kendall"]),
                        _num(res.get("size_bucket_spearman")), _num(res["seconds_per_cell"]))
        rank = res["top_ranked_truth_rank"]
        head.add_row(name, *(_num(res[f"top{p}_precision"]) for p in (1, 5, 10)), _num(res[f"ndcg{corr.NDCG_K}"]),
                     _num(res["top_ranked_truth"], 2), "-" if rank is None else str(rank))
    console.print(ranking)
    console.print(head)
    for name, res in summary["results"].items():
        interval = res["settings"].get("interval")
        if interval:
            say(f"{name} interval: [{interval[0]:g}, {interval[1]:g})")
    say(f"wrote {out}/scores.csv, summary.json and scatter_<estimator>.png")
