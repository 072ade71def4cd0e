"""Command-line interface: one thin function per subcommand (parse -> library -> print).

Every user error becomes a one-line ``error: ...`` on stderr and exit status 2.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import warnings
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
        shown = "-" if not size else f"{size:,}" if size < 10**9 else f"{size:.2e}"
        table.add_row(name, shown, ", ".join(space.ops), space.description)
    console.print(table)


@app.command("correlate")
def correlate_cmd(
    space: str = typer.Option("nb201", "--space", help="Search space of the cells."),
    estimator: str = typer.Option("sweet", "--estimator", help="Comma-separated estimator names, e.g. sweet,synflow,params."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Benchmark table (arch + accuracy columns) to sample cells from."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Number of seeded-random cells to score (required with --truth)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the cell sample, weight init and batches."),
    archs_file: Optional[Path] = typer.Option(None, "--archs-file", help="CSV of genotype strings (arch or genotype column) with an accuracy column; any space."),
    truth_column: str = typer.Option("cifar10_test", "--truth-column", help="Accuracy column of --truth / --archs-file."),
    dataset: str = typer.Option("cifar10", "--dataset", help="Dataset the estimators see."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder (default $EVONAS_DATA or the user cache)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Images per estimator batch."),
    interval: Optional[tuple[float, float]] = typer.Option(None, "--interval", help="Sweet-family gradient interval LO HI (default: calibrated)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default runs/correlate-<time>/)."),
    executor: str = typer.Option("local", "--executor", help="local (in this process) or ray (a pool of workers)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Ray workers (default: one per CPU)."),
) -> None:
    """Rank consistency of estimators against true accuracy: Spearman, Kendall, top-10% precision."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from evonas import correlate as corr

    names = corr.parse_estimators(estimator)
    cells = corr.load_cells(space, truth=truth, archs_file=archs_file, sample=sample, seed=seed, column=truth_column)
    settings = corr.CorrelateSettings(
        space=space, estimators=tuple(names), seed=seed, dataset=dataset,
        data_dir=str(data_dir) if data_dir else None, batch_size=batch_size, interval=interval,
    )
    out = out or Path("runs") / time.strftime("correlate-%Y%m%d-%H%M%S")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
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
    table = Table("estimator", "scored", "spearman", "kendall", "top-10% prec.", "s/cell")
    for name, res in summary["results"].items():
        table.add_row(name, f"{res['scored']}/{res['n']}", f"{res['spearman']:.3f}", f"{res['kendall']:.3f}",
                      f"{res['top10_precision']:.3f}", f"{res['seconds_per_cell']:.3f}")
    console.print(table)
    for name, res in summary["results"].items():
        interval = res["settings"].get("interval")
        if interval:
            console.print(f"{name} interval: [{interval[0]:g}, {interval[1]:g})", markup=False, highlight=False)
    console.print(f"wrote {out}/scores.csv, summary.json and scatter_<estimator>.png", markup=False)


@app.command("estimators")
def estimators_cmd() -> None:
    """List the zero-cost estimators: what each needs, where it comes from, what it measures."""
    import estimators

    table = Table("name", "needs", "source", "description")
    for name, cls in estimators.available().items():
        needs = [what for what, flag in (("data", cls.needs_data), ("labels", cls.needs_labels),
                                         ("interval", cls.needs_calibration)) if flag]
        package = cls.__module__.split(".")[0]
        source = "built-in" if package == "estimators" else f"plugin {package}"
        table.add_row(name, ", ".join(needs) or "-", source, cls.description)
    console.print(table)


@app.command("calibrate")
def calibrate_cmd(
    space: str = typer.Option("nb201", "--space", help="Search space whose cells are sampled."),
    dataset: str = typer.Option("cifar10", "--dataset", help="Dataset of the calibration batch."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder (default $EVONAS_DATA or the user cache)."),
    archs: int = typer.Option(100, "--archs", min=1, help="Architectures whose depth trends are averaged."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Images in the calibration batch."),
    seed: int = typer.Option(0, "--seed", help="Seed of the architectures, weights and batch."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute even when cached (the fresh result is stored)."),
) -> None:
    """Calibrate the Sweetimator gradient interval (cached per space/dataset/batch size) and show every bin."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.text import Text

    from evonas.calibration import cache_path, calibration_for

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("calibrating", total=archs)
        cal = calibration_for(space, dataset, str(data_dir) if data_dir else None, batch_size, seed, archs,
                              progress=lambda done, total: bar.update(task, completed=done, total=total),
                              use_cache=not no_cache)
    result = cal.result
    table = Table("|grad| bin", "mean depth trend", "")
    for i, ((lo, hi), mean) in enumerate(zip(result.bins, result.means)):
        table.add_row(Text(f"[{lo:g}, {hi:g})"), f"{mean:+.3f}", "<- chosen" if i == result.chosen else "")
    console.print(table)
    lo, hi = result.interval
    where = "from the cache" if cal.cached else "stored in the cache"
    console.print(f"interval: [{lo:g}, {hi:g}) over {result.num_networks} networks; {where} {cache_path()}",
                  markup=False, highlight=False)


@app.command("arch")
def arch_cmd(
    genotype: str = typer.Argument(..., help="Genotype string (for darts either text form)."),
    space: str = typer.Option("nb201", "--space", help="Search space of the genotype."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="NB-201 accuracy table: show the cell's trained accuracies."),
    classes: int = typer.Option(10, "--classes", min=1, help="Classes of the networks whose parameters are counted."),
) -> None:
    """Show a cell: its nodes, canonical key, parameter counts and (NB-201) true accuracies."""
    import search_spaces
    from evonas.errors import EvonasError
    from evonas.recipes import default_recipe

    sp = search_spaces.get(space)
    g = sp.from_str(genotype)
    if truth is not None and space != "nb201":
        raise EvonasError("--truth needs --space nb201 (it reads the NAS-Bench-201 accuracy table)")

    def show(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    def count(options: dict) -> int:
        return sum(p.numel() for p in sp.build(g, classes, **options).parameters())

    show(f"{space} genotype: {sp.to_str(g)}")
    show(sp.describe(g))
    show(f"canonical key: {sp.canonical_key(g)}")
    evaluation = {k: v for k, v in default_recipe(space).build_options().items() if k != "drop_path_prob"}
    evaluation.pop("auxiliary", None)  # the auxiliary head is training-only: not counted
    show(f"parameters: {count(evaluation):,} (evaluation network, {classes} classes)")
    proxy = sp.proxy_options()
    if proxy != evaluation:
        described = ", ".join(f"{k}={v}" for k, v in proxy.items())
        show(f"            {count(proxy):,} (scoring proxy, {described})")
    if truth is None:
        return
    from search_spaces.nb201 import lookup_truth

    try:
        match = lookup_truth(truth, g)
    except FileNotFoundError:
        raise EvonasError(f"truth table {truth} not found; pass the NAS-Bench-201 accuracy CSV") from None
    except ValueError as exc:
        raise EvonasError(str(exc)) from None
    if match is None:
        show(f"true accuracy: neither this cell nor an isomorphic one is in {truth}")
        return
    how = "matched by exact genotype" if match.how == "exact" else f"matched by isomorphic cell {match.arch}"
    show(f"true accuracy ({how}; {match.class_size} row(s) of its isomorphism class in the table):")
    for column, value in match.accuracies.items():
        show(f"  {column:<16} {value:.2f}")


class _TrainBars:
    """`evonas train` progress: a rich bar per epoch, then one summary line per finished epoch."""

    def __init__(self, progress) -> None:  # a started rich.progress.Progress
        self.progress, self.label, self.epochs, self.task = progress, "", 0, None

    def start(self, label: str, epochs: int, first_epoch: int) -> None:
        self.label, self.epochs = label, epochs
        if first_epoch:
            self.progress.console.print(f"{label}: resuming after epoch {first_epoch}/{epochs}")

    def epoch_start(self, epoch: int, batches: int) -> None:
        self.task = self.progress.add_task(f"{self.label} epoch {epoch + 1}/{self.epochs}", total=batches)

    def batch_end(self) -> None:
        self.progress.advance(self.task)

    def epoch_end(self, m: dict) -> None:
        self.progress.remove_task(self.task)
        self.progress.console.print(
            f"{self.label} epoch {int(m['epoch'])}/{self.epochs}: train loss {m['train_loss']:.3f} "
            f"acc {m['train_accuracy']:.2f}%  test loss {m['test_loss']:.3f} acc {m['test_accuracy']:.2f}%  "
            f"lr {m['lr']:.4g}  {m['images_per_second']:,.0f} img/s"
        )


def _print_train_results(results: list[dict]) -> None:
    """The table `evonas train` (and `search --train-top`) ends with, then each folder and genotype."""
    table = Table("rank", "test acc", "best acc (epoch)", "params", "MACs", "time")
    for r in results:
        table.add_row(
            str(r.get("rank", "-")), f"{r['test_accuracy']:.2f}%", f"{r['best_test_accuracy']:.2f}% ({r['best_epoch']})",
            f"{r['parameters'] / 1e6:.3f}M", f"{r['flops'] / 1e6:.1f}M", f"{r['wall_seconds']:.0f}s",
        )
    console.print(table)
    for r in results:
        console.print(f"{r.get('rank', '-')}: {r['out_dir']}  {r['genotype']}", markup=False, highlight=False, soft_wrap=True)
    if any(r.get("synthetic_data") for r in results):
        console.print("[yellow]note: trained on SYNTHETIC data; these accuracies mean nothing[/yellow]")


@app.command("train")
def train_cmd(
    run_dir: Optional[Path] = typer.Argument(None, help="A search run folder: train its --top best genotypes into RUN_DIR/train/."),
    top: Optional[int] = typer.Option(None, "--top", help="With RUN_DIR: how many best distinct genotypes to train (default: 1)."),
    space: Optional[str] = typer.Option(None, "--space", help="Space of --genotype: nb201 or darts."),
    genotype: Optional[str] = typer.Option(None, "--genotype", help="Genotype string to train (with --space)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder for --genotype (default: runs/train/SPACE-KEYHASH)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint(s) in the output folder(s)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (default: nb201 200, darts 600)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size (default: nb201 256, darts 96)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Initial learning rate, cosine to 0 (default: nb201 0.1, darts 0.025)."),
    momentum: Optional[float] = typer.Option(None, "--momentum", help="SGD momentum (default: 0.9)."),
    nesterov: Optional[bool] = typer.Option(None, "--nesterov/--no-nesterov", help="Nesterov momentum (default: nb201 on, darts off)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Weight decay (default: nb201 5e-4, darts 3e-4)."),
    channels: Optional[int] = typer.Option(None, "--channels", help="Initial channels (default: nb201 16, darts 36)."),
    layers: Optional[int] = typer.Option(None, "--layers", help="nb201: cells per stage (default: 5); darts: cells (default: 20)."),
    cutout: Optional[int] = typer.Option(None, "--cutout", help="Cutout square side, 0 = off (default: nb201 0, darts 16)."),
    drop_path: Optional[float] = typer.Option(None, "--drop-path", help="darts: final drop-path probability, ramped linearly (default: 0.2)."),
    aux_weight: Optional[float] = typer.Option(None, "--aux-weight", help="darts: auxiliary-head loss weight, 0 = no head (default: 0.4)."),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help="Gradient-norm clip, 0 = off (default: nb201 off, darts 5)."),
    train_images: Optional[int] = typer.Option(None, "--train-images", help="Train on the first N training images (quick runs)."),
    test_images: Optional[int] = typer.Option(None, "--test-images", help="Evaluate on the first N test images."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="cifar10, cifar100, imagenet16-120 or synthetic (default: cifar10, or the run's)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder holding the dataset (default: $EVONAS_DATA or the cache, or the run's)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the weights and the data order (default: 0)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="With RUN_DIR: trainings at once as Ray tasks (default: one per GPU, else 1)."),
    address: Optional[str] = typer.Option(None, "--address", help="With RUN_DIR: join this Ray cluster (HOST:PORT or auto); one GPU per task."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
) -> None:
    """Train a genotype (--space/--genotype) or a search run's best (RUN_DIR --top K) with the published recipe."""
    from evonas.errors import EvonasError
    from evonas.train import train_genotype

    overrides = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum, "nesterov": nesterov,
        "weight_decay": weight_decay, "channels": channels, "layers": layers, "cutout": cutout,
        "drop_path": drop_path, "aux_weight": aux_weight, "grad_clip": grad_clip, "train_images": train_images,
        "test_images": test_images, "dataset": dataset, "data_dir": str(data_dir) if data_dir else None, "seed": seed,
    }
    if (run_dir is None) == (genotype is None):
        raise EvonasError("give either a run folder (evonas train RUN_DIR --top K) or --space and --genotype")
    if run_dir is None and (space is None or top is not None or workers is not None or address is not None):
        raise EvonasError("--genotype needs --space; --top, --workers and --address go with a RUN_DIR")
    if run_dir is not None and (space is not None or out is not None):
        raise EvonasError("with a RUN_DIR the space comes from the run and the output goes to RUN_DIR/train/; drop --space/--out")
    if run_dir is None:
        with _train_progress() as bars:
            results = [train_genotype(space, genotype, out, overrides, resume=resume, device=device, progress=bars)]
        _print_train_results(results)
    else:
        _train_run_top(run_dir, top or 1, overrides, resume=resume, workers=workers, address=address, device=device)


@contextlib.contextmanager
def _train_progress():
    """A transient rich progress display wrapped as the trainer's progress hooks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        yield _TrainBars(bar)


def _train_run_top(run_dir: Path, k: int, overrides: dict, **options) -> None:
    """Train a run's top ``k`` with progress output and the results table (train and search --train-top)."""
    from evonas.train import train_top

    with _train_progress() as bars:
        def done(r: dict) -> None:
            bars.progress.console.print(f"rank {r['rank']} trained: {r['test_accuracy']:.2f}% -> {r['out_dir']}")

        results = train_top(run_dir, k, overrides, progress=bars, on_result=done, **options)
    _print_train_results(results)


@app.command("search")
def search_cmd(
    space: Optional[str] = typer.Option(None, "--space", help="Search space: nb201 or darts. (default: nb201)"),
    estimator: Optional[str] = typer.Option(None, "--estimator", help="Zero-cost estimator (see `evonas estimators`). (default: sweet)"),
    budget: Optional[int] = typer.Option(None, "--budget", help="Evaluations, cache hits included. (default: 500, or none with --time-limit)"),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Stop submitting after this many wall-clock seconds."),
    population: Optional[int] = typer.Option(None, "--population", help="Population size P. (default: 25 nb201, 50 darts)"),
    sample: Optional[int] = typer.Option(None, "--sample", help="Tournament sample size S. (default: 5 nb201, 10 darts)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for every random draw of the run. (default: 0)"),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="cifar10, cifar100, imagenet16-120 or synthetic. (default: cifar10)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder (default $EVONAS_DATA or the user cache)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per estimator batch. (default: 64)"),
    batch_policy: Optional[str] = typer.Option(None, "--batch-policy", help="fixed (one batch for all cells) or fresh (one per evaluation). (default: fixed)"),
    interval: Optional[tuple[float, float]] = typer.Option(None, "--interval", help="Sweet-family gradient interval LO HI. (default: calibrated)"),
    executor: Optional[str] = typer.Option(None, "--executor", help="local or ray. (default: ray if --workers > 1 or --address, else local)"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Scoring workers; more than 1 means Ray actors. (default: 1, or one per CPU/GPU with --executor ray)"),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", help="GPUs per Ray actor, fractions allowed."),
    address: Optional[str] = typer.Option(None, "--address", help="Join a running Ray cluster (host:port or auto)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder. (default: RUNS_ROOT/<time>-<space>-<estimator>)"),
    runs_root: Optional[Path] = typer.Option(None, "--runs-root", help="Parent of new run folders. (default: runs)"),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help="Checkpoint every K evaluations. (default: 25)"),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Score M random cells first and start from the best P (0 = off). (default: 0)"),
    truth: Optional[Path] = typer.Option(None, "--truth", help="NB-201 accuracy table: show the true accuracy of the top cells."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Rows of the final table. (default: 5)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder (after Ctrl-C or a kill)."),
    train_top: int = typer.Option(0, "--train-top", help="Then train the K best distinct cells with the published recipe into RUN/train/ (see `evonas train`)."),
    train_epochs: Optional[int] = typer.Option(None, "--train-epochs", help="With --train-top: epochs instead of the recipe's (quick runs)."),
) -> None:
    """Aging evolution scored by a zero-cost estimator; writes a resumable run folder."""
    import signal

    from evonas.config import SearchConfig
    from evonas.errors import EvonasError
    from evonas.runs import default_run_name
    from evonas.search import check_truth, resume_search, start_search

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
    with _SearchProgress() as bar:
        try:
            if resume is not None:
                if run_dir is not None or runs_root is not None:
                    raise EvonasError("--resume continues the run in its own folder; drop --run-dir/--runs-root")
                path = resume_search(resume, {k: v for k, v in given.items() if k != "top_k"}, progress=bar.update)
            else:
                if "time_limit" in given and "budget" not in given:
                    given["budget"] = None  # a time limit alone bounds the run
                config = SearchConfig(**given).resolved()
                if truth is not None:
                    check_truth(truth, config.dataset)  # before the search, not after it
                target = run_dir or (runs_root or Path("runs")) / default_run_name(config.space, config.estimator)
                path = start_search(config, run_dir=target, progress=bar.update, interval_progress=bar.calibrating)
        except KeyboardInterrupt:
            bar.stop()
            if target is not None and (target / "checkpoint.json").exists():
                print(f"interrupted; checkpoint saved. Continue with: evonas search --resume {target}", file=sys.stderr)
            else:
                print("interrupted before the search started; nothing to resume", file=sys.stderr)
            raise typer.Exit(130) from None
    _print_run(path, top_k, truth)
    if train_top > 0:  # finished or half-done trainings of an earlier attempt are picked up, not redone
        _train_run_top(path, train_top, {"epochs": train_epochs}, resume=True, address=address)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler: stop like Ctrl-C, so the search checkpoints first."""
    raise KeyboardInterrupt


class _SearchProgress:
    """Rich progress bar for a search: evaluations, best score, rate, cache hits."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"), TextColumn("{task.fields[rate]} eval/s"),
            TextColumn("cache {task.fields[hits]}"), TimeElapsedColumn(), console=console, transient=True,
        )
        self.task = None
        self.calib = None

    def __enter__(self) -> "_SearchProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.bar.stop()

    def calibrating(self, done: int, total: int) -> None:
        if self.calib is None:
            self.calib = self.bar.add_task("calibrating interval", total=total, best="-", rate="-", hits="-")
        self.bar.update(self.calib, completed=done)

    def update(self, p) -> None:  # p: evonas.search.Progress
        fields = {"best": f"{p.best:.6g}" if p.best is not None else "-", "rate": f"{p.rate:.2f}",
                  "hits": f"{p.cache_hit_rate:.0%}"}
        if self.task is None:
            self.task = self.bar.add_task("searching", total=p.budget, **fields)
        self.bar.update(self.task, completed=p.evaluations, **fields)


def _print_run(run_dir: Path, top_k: Optional[int], truth: Optional[Path]) -> None:
    """Summary lines and the top-k table of a run folder (used by search and show)."""
    from evonas.search import run_summary, true_accuracies

    s = run_summary(run_dir, top_k)
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
    accuracies = true_accuracies(truth, search.get("space"), search.get("dataset", "cifar10"),
                                 [r["genotype"] for r in s["top"]]) if truth else {}
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
    truth: Optional[Path] = typer.Option(None, "--truth", help="NB-201 accuracy table: add true accuracies."),
) -> None:
    """Summarise a search run: progress, failures, cache hits, speed, top cells."""
    _print_run(run_dir, top_k, truth)


@app.command("data")
def data_cmd(
    dataset: str = typer.Argument("cifar10", help="cifar10, cifar100, imagenet16-120 or synthetic."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder holding the dataset (else $EVONAS_DATA, else the per-user cache)."),
    download: bool = typer.Option(True, "--download/--no-download", help="Download CIFAR (checksum-verified) when it is absent."),
) -> None:
    """Find (or download) a dataset and print where it is and what it holds."""
    import logging

    from evonas.data import load_dataset

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = Table("split", "images", "classes", "resolution")
    for split in ("train", "test"):
        ds = load_dataset(dataset, split=split, data_dir=data_dir, download=download)
        table.add_row(split, f"{len(ds):,}", str(ds.num_classes), f"{ds.resolution}x{ds.resolution}")
    console.print(table)
    print(f"source: {'synthetic (random images and labels)' if ds.synthetic else ds.source}")


def main() -> None:
    """Console-script entry point with one-line errors for bad input."""
    warnings.formatwarning = lambda message, *_args, **_kw: f"warning: {message}\n"
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
