"""``evonas search`` and ``evonas show``: run (or resume) a search, and summarise any run."""
from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from evonas.cli.app import app, console
from evonas.cli.train import train_run_top
from evonas.errors import EvonasError
from evonas.settings import (
    BATCH_POLICIES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BUDGET,
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_DATASET,
    DEFAULT_ESTIMATOR,
    DEFAULT_SPACE,
    DEFAULT_TOP_K,
    SPACE_DEFAULTS,
)

_POPULATIONS = ", ".join(f"{p} {space}" for space, (p, _) in SPACE_DEFAULTS.items())
_SAMPLES = ", ".join(f"{s} {space}" for space, (_, s) in SPACE_DEFAULTS.items())


@app.command("search")
def search_cmd(
    space: Optional[str] = typer.Option(None, "--space", help=f"Search space: {', '.join(SPACE_DEFAULTS)}. (default: {DEFAULT_SPACE})"),
    estimator: Optional[str] = typer.Option(None, "--estimator", help=f"Zero-cost estimator (see `evonas estimators`). (default: {DEFAULT_ESTIMATOR})"),
    budget: Optional[int] = typer.Option(None, "--budget", help=f"Evaluations, cache hits included. (default: {DEFAULT_BUDGET}, or none with --time-limit)"),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Stop submitting after this many wall-clock seconds."),
    population: Optional[int] = typer.Option(None, "--population", help=f"Population size P. (default: {_POPULATIONS})"),
    sample: Optional[int] = typer.Option(None, "--sample", help=f"Tournament sample size S. (default: {_SAMPLES})"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for every random draw of the run. (default: 0)"),
    dataset: Optional[str] = typer.Option(None, "--dataset", help=f"cifar10, cifar100, imagenet16-120 or synthetic. (default: {DEFAULT_DATASET})"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder (default $EVONAS_DATA or the user cache)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=f"Images per estimator batch. (default: {DEFAULT_BATCH_SIZE})"),
    batch_policy: Optional[str] = typer.Option(None, "--batch-policy", help=f"fixed (one batch for all cells) or fresh (one per evaluation). (default: {BATCH_POLICIES[0]})"),
    interval: Optional[tuple[float, float]] = typer.Option(None, "--interval", help="Sweet-family gradient interval LO HI. (default: calibrated)"),
    executor: Optional[str] = typer.Option(None, "--executor", help="local or ray. (default: ray if --workers > 1 or --address, else local)"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Scoring workers; more than 1 means Ray actors. (default: 1, or one per CPU/GPU with --executor ray)"),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", help="GPUs per Ray actor, fractions allowed."),
    address: Optional[str] = typer.Option(None, "--address", help="Join a running Ray cluster (host:port or auto)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder. (default: RUNS_ROOT/<time>-<space>-<estimator>)"),
    runs_root: Optional[Path] = typer.Option(None, "--runs-root", help="Parent of new run folders. (default: runs)"),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help=f"Checkpoint every K evaluations. (default: {DEFAULT_CHECKPOINT_EVERY})"),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Score M random cells first and start from the best P (0 = off). (default: 0)"),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Benchmark accuracy table (NB-201): show the true accuracy of the top cells."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help=f"Rows of the final table. (default: {DEFAULT_TOP_K})"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder (after Ctrl-C or a kill)."),
    train_top: int = typer.Option(0, "--train-top", help="Then train the K best distinct cells with the published recipe into RUN/train/ (see `evonas train`)."),
    train_epochs: Optional[int] = typer.Option(None, "--train-epochs", help="With --train-top: epochs instead of the recipe's (quick runs)."),
) -> None:
    """Aging evolution scored by a zero-cost estimator; writes a resumable run folder."""
    import search_spaces
    from evonas.cli.progress import SearchBar
    from evonas.runs import default_run_name
    from evonas.search import resume_search, start_search
    from evonas.settings import SearchSettings

    given = {
        "space": space, "estimator": estimator, "budget": budget, "time_limit": time_limit,
        "population": population, "sample": sample, "seed": seed, "dataset": dataset,
        "data_dir": str(data_dir) if data_dir else None, "batch_size": batch_size, "batch_policy": batch_policy,
        "interval": interval, "executor": executor, "workers": workers, "gpus_per_worker": gpus_per_worker,
        "address": address, "checkpoint_every": checkpoint_every, "warmup": warmup, "top_k": top_k,
    }
    given = {k: v for k, v in given.items() if v is not None}
    target: Optional[Path] = resume
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops as cleanly as Ctrl-C
    with SearchBar() as bar:
        try:
            if resume is not None:
                if run_dir is not None or runs_root is not None:
                    raise EvonasError("--resume continues the run in its own folder; drop --run-dir/--runs-root")
                path = resume_search(resume, {k: v for k, v in given.items() if k != "top_k"}, progress=bar.update)
            else:
                if "time_limit" in given and "budget" not in given:
                    given["budget"] = None  # a time limit alone bounds the run
                settings = SearchSettings(**given).resolved()
                if truth is not None:  # checked before the search, not after it
                    space_obj = search_spaces.get(settings.space)
                    space_obj.truth_column(settings.dataset)
                    space_obj.benchmark(truth)
                target = run_dir or (runs_root or Path("runs")) / default_run_name(settings.space, settings.estimator)
                path = start_search(settings, run_dir=target, progress=bar.update, interval_progress=bar.calibrating)
        except KeyboardInterrupt:
            bar.stop()
            if target is not None and (target / "checkpoint.json").exists():
                print(f"interrupted; checkpoint saved. Continue with: evonas search --resume {target}", file=sys.stderr)
            else:
                print("interrupted before the search started; nothing to resume", file=sys.stderr)
            raise typer.Exit(130) from None
    print_run(path, top_k, truth)
    if train_top > 0:  # finished or half-done trainings of an earlier attempt are picked up, not redone
        train_run_top(path, train_top, {"epochs": train_epochs}, resume=True, address=address)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler: stop like Ctrl-C, so the search checkpoints first."""
    raise KeyboardInterrupt


def print_run(run_dir: Path, top_k: Optional[int], truth: Optional[Path]) -> None:
    """Summary lines and the top-k table of a run folder (used by search and show)."""
    import search_spaces
    from evonas.runs import RunRecord

    s = RunRecord.open(run_dir).summary(top_k)
    search = s["config"].get("search", {})
    est = s["config"].get("estimator", {})
    interval = est.get("settings", {}).get("interval")
    state = "finished" if s["complete"] else f"stopped (continue with: evonas search --resume {s['run_dir']})"
    budget = f"/{s['budget']}" if s["budget"] else ""
    console.print(f"run {s['run_dir']}: {search.get('space')} / {est.get('name')}"
                  + (f" interval [{interval[0]:g}, {interval[1]:g})" if interval else "")
                  + f", P={search.get('population')} S={search.get('sample')} seed={search.get('seed')}", soft_wrap=True)
    console.print(f"{state}: {s['evaluations']}{budget} evaluations, {s['failed']} failed, "
                  f"cache hits {s['cache_hits']} ({s['cache_hit_rate']:.0%}), "
                  f"{s['elapsed']:.1f} s ({s['rate']:.2f} eval/s)", soft_wrap=True)
    accuracies: dict[str, float | None] = {}
    if truth is not None:
        space = search_spaces.get(search.get("space"))
        column = space.truth_column(search.get("dataset", DEFAULT_DATASET))
        table = space.benchmark(truth)
        accuracies = {r["genotype"]: table.accuracy(r["genotype"], column) for r in s["top"]}
    table = Table("rank", "id", "score", *(["true acc"] if truth else []), title=f"top {len(s['top'])} cells")
    table.add_column("genotype", overflow="fold")
    for rank, rec in enumerate(s["top"], 1):
        acc = accuracies.get(rec["genotype"])
        table.add_row(str(rank), str(rec["id"]), f"{rec['score']:.6g}",
                      *([f"{acc:.2f}" if acc is not None else "-"] if truth else []), rec["genotype"])
    console.print(table)


@app.command("show")
def show_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder written by `evonas search` (finished or not)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Rows of the table. (default: the run's --top-k)"),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Benchmark accuracy table (NB-201): add true accuracies."),
) -> None:
    """Summarise a search run: progress, failures, cache hits, speed, top cells."""
    print_run(run_dir, top_k, truth)
