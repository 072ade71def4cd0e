"""``evonas trust``: which estimator to trust on a space without a benchmark table (short training as truth)."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from evonas.cli.app import app, console, say
from evonas.settings import DEFAULT_BATCH_SIZE, DEFAULT_DATASET, DEFAULT_SPACE, EXECUTOR_KINDS

DEFAULT_ESTIMATORS = "sweet,synflow,nwot"


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def print_trust(result: dict[str, Any]) -> None:
    """The ranked table, the recommendation and the caveat; with a table, both rankings side by side."""
    table = Table("place", "estimator", "spearman", "kendall", "P@10%", "top-ranked acc.", "failed", "s/cell",
                  title=f"estimators against short training ({len(result['cells'])} cells)")
    for r in result["ranking"]:
        table.add_row(str(r["place"]), r["estimator"] + ("*" if r["baseline"] else ""), _num(r["spearman"]),
                      _num(r["kendall"]), _num(r["top10_precision"], 2), _num(r["top_ranked_truth"], 2),
                      str(r["failed"]), _num(r["seconds_per_cell"], 2))
    console.print(table)
    say("* a size baseline")
    say(result["recommendation"])
    if result.get("warning"):
        console.print(f"[yellow]warning: {result['warning']}[/yellow]", soft_wrap=True, highlight=False)
    say(f"caveat: {result['caveat']}")
    if result.get("synthetic_data"):
        console.print("[yellow]note: trained on SYNTHETIC data; these accuracies mean nothing[/yellow]")
    versus = result.get("versus_table")
    if versus:
        side = Table("estimator", "place (short)", "spearman (short)", "place (table)", "spearman (table)",
                     title=f"short training against the table ({versus['column']})")
        for r in versus["side_by_side"]:
            side.add_row(r["estimator"], str(r["short_place"]), _num(r["short_spearman"]), str(r["table_place"]),
                         _num(r["table_spearman"]))
        console.print(side)
        say(f"Spearman between the two estimator rankings: {_num(versus['rankings_spearman'])}; "
            f"short-training accuracy against the table: Spearman {_num(versus['short_vs_table_spearman'])}")
        say(f"by the table: {versus['recommendation']}"
            + (" (the same choice)" if versus["same_choice"] else " (a different choice)"))


@app.command("trust")
def trust_cmd(
    space: str = typer.Option(DEFAULT_SPACE, "--space", help="Search space to sample cells from (a plug-in too)."),
    estimator: str = typer.Option(DEFAULT_ESTIMATORS, "--estimator", help="Comma-separated estimators or composites to judge; params and flops are always added as baselines."),
    sample: int = typer.Option(20, "--sample", help="Cells to sample (seeded) and train (at least 3)."),
    epochs: int = typer.Option(1, "--epochs", help="Epochs of each short training (the space's recipe otherwise)."),
    images: Optional[int] = typer.Option(None, "--images", help="Train on the first N training images (default: all)."),
    test_images: Optional[int] = typer.Option(None, "--test-images", help="Measure accuracy on the first N test images (default: all)."),
    train_batch_size: Optional[int] = typer.Option(None, "--train-batch-size", help="Batch size of the short trainings (default: the space's recipe)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the cell sample, the trainings and the scoring."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="A benchmark table: draw the cells from it and compare the short-training verdict with its accuracies."),
    truth_column: str = typer.Option("cifar10_test", "--truth-column", help="Accuracy column of --truth."),
    dataset: str = typer.Option(DEFAULT_DATASET, "--dataset", help="Dataset to train on and score with."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder (default $EVONAS_DATA or the user cache)."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Images per estimator batch."),
    interval: Optional[tuple[float, float]] = typer.Option(None, "--interval", help="Sweet-family gradient interval LO HI (default: calibrated)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/trust-<time>/); rerun with the same --out and flags to continue it."),
    executor: str = typer.Option(EXECUTOR_KINDS[0], "--executor", help="local (one at a time in this process) or ray (trainings as Ray tasks, scoring on a pool)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="With --executor ray: trainings (and scorers) at once."),
    address: Optional[str] = typer.Option(None, "--address", help="With --executor ray: join this Ray cluster for the trainings."),
    device: str = typer.Option("auto", "--device", help="Training device: auto, cpu or cuda[:N]."),
) -> None:
    """Train N sampled cells briefly and rank the estimators by how well they predict that accuracy.

    For a space without a benchmark table: the short-training accuracies are the truth every
    estimator (and the params/FLOPs baselines) is correlated against. Resumable: a rerun of the
    same --out trains only what is missing. Short training is itself a proxy; with --truth TABLE
    the same cells are also judged against the table, to see how far that proxy can be believed.
    """
    from evonas.scoring import parse_estimators
    from evonas.trusting import TrustProgress, TrustSettings, trust

    settings = TrustSettings(
        space=space, estimators=tuple(parse_estimators(estimator)), sample=sample, epochs=epochs, images=images,
        test_images=test_images, train_batch_size=train_batch_size, seed=seed, dataset=dataset,
        data_dir=str(data_dir) if data_dir else None, batch_size=batch_size, interval=interval,
        truth=str(truth) if truth else None, truth_column=truth_column, executor=executor, workers=workers,
        address=address, device=device,
    )
    out = out or Path("runs") / time.strftime("trust-%Y%m%d-%H%M%S")
    scored: dict[str, int] = {}

    def trained(done: int, total: int, line: dict[str, Any], eta: float | None) -> None:
        _stderr(f"cell {done}/{total} trained (cell {line['cell']}): {line['accuracy']:.2f}% in "
                f"{line['seconds']:.0f} s; ETA {_minutes(eta)}")

    def score(name: str, k: int) -> None:
        scored[name] = scored.get(name, 0) + k
        if scored[name] == sample:
            _stderr(f"scored {name}: {sample}/{sample} cells")

    def calibrating(done: int, total: int) -> None:
        if done in (1, total) or done % 25 == 0:
            _stderr(f"calibrating the Sweetimator interval: {done}/{total} networks")

    result = trust(settings, out, TrustProgress(trained=trained, note=_stderr, scored=score, calibrating=calibrating))
    print_trust(result)
    say(f"wrote {out}/trust.json and trust.md (trained.jsonl, train/, correlate/{', table/' if truth else ''})")
