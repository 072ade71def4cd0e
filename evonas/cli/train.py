"""``evonas train``: final training of a genotype, or of a search run's best cells."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from evonas.cli.app import app, console, say
from evonas.errors import EvonasError

#: Every recipe default belongs to the space (``evonas spaces`` lists each space's recipe); the help
#: does not load the spaces to print them, so that ``--help`` stays instant.
_SPACE_DEFAULT = "(default: the space's recipe, see `evonas spaces`)"


def print_train_results(results: list[dict[str, Any]]) -> None:
    """The table `evonas train` (and `search --train-top`) ends with, then each folder and genotype."""
    table = Table("rank", "test acc", "best acc (epoch)", "params", "MACs", "time")
    for r in results:
        table.add_row(
            str(r.get("rank", "-")), f"{r['test_accuracy']:.2f}%", f"{r['best_test_accuracy']:.2f}% ({r['best_epoch']})",
            f"{r['parameters'] / 1e6:.3f}M", f"{r['flops'] / 1e6:.1f}M", f"{r['wall_seconds']:.0f}s",
        )
    console.print(table)
    for r in results:
        say(f"{r.get('rank', '-')}: {r['out_dir']}  {r['genotype']}")
    if any(r.get("synthetic_data") for r in results):
        console.print("[yellow]note: trained on SYNTHETIC data; these accuracies mean nothing[/yellow]")


def train_run_top(run_dir: Path, k: int, overrides: dict[str, Any], **options: Any) -> None:
    """Train a run's top ``k`` with progress output and the results table (train and search --train-top)."""
    from evonas.progress import training
    from evonas.training import train_top

    with training() as bars:
        def done(r: dict) -> None:
            bars.progress.console.print(f"rank {r['rank']} trained: {r['test_accuracy']:.2f}% -> {r['out_dir']}")

        results = train_top(run_dir, k, overrides, progress=bars, on_result=done, **options)
    print_train_results(results)


def refine_with_progress(run_dir: Path, top: int, epochs: int, **options: Any) -> dict[str, Any]:
    """``refine_run`` with training progress bars (``evonas refine`` and ``search --refine-top``)."""
    from evonas.progress import training
    from evonas.training.refine import refine_run

    with training() as bars:
        return refine_run(run_dir, top, epochs, progress=bars, **options)


@app.command("refine")
def refine_cmd(
    run_dir: Path = typer.Argument(..., help="A search run folder: refine its head into RUN_DIR/refine/ and refine.json."),
    top: int = typer.Option(4, "--top", help="How many best distinct cells to train briefly."),
    epochs: int = typer.Option(2, "--epochs", help="Epochs of each short training (doubling per round with --halving)."),
    halving: bool = typer.Option(False, "--halving", help="Successive halving: the better half goes on with twice the epochs, until two remain."),
    train_images: Optional[int] = typer.Option(None, "--train-images", help="Training images per short training (default: all)."),
    test_images: Optional[int] = typer.Option(None, "--test-images", help="Test images each accuracy is measured on (default: all)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=f"Batch size {_SPACE_DEFAULT}."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Train this many cells at once as Ray tasks."),
    address: Optional[str] = typer.Option(None, "--address", help="Join a running Ray cluster for the trainings."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Benchmark accuracy table: show the true accuracy of each cell."),
) -> None:
    """Train a run's best cells briefly with the space's recipe and keep the best by that accuracy (resumable)."""
    from evonas.cli.search import print_refinement

    refine_with_progress(run_dir, top, epochs, halving=halving, workers=workers, address=address, device=device,
                         overrides={"train_images": train_images, "test_images": test_images, "batch_size": batch_size})
    print_refinement(run_dir, truth)


@app.command("train")
def train_cmd(
    run_dir: Optional[Path] = typer.Argument(None, help="A search run folder: train its --top best genotypes into RUN_DIR/train/."),
    top: Optional[int] = typer.Option(None, "--top", help="With RUN_DIR: how many best distinct genotypes to train (default: 1)."),
    front: bool = typer.Option(False, "--front", help="With RUN_DIR: train every cell of the run's Pareto front."),
    pick: Optional[str] = typer.Option(None, "--pick", help='With RUN_DIR: train the best cell within cost bounds, e.g. "params<=1M".'),
    space: Optional[str] = typer.Option(None, "--space", help="Space of --genotype (see `evonas spaces`)."),
    genotype: Optional[str] = typer.Option(None, "--genotype", help="Genotype string to train (with --space)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder for --genotype (default: runs/train/SPACE-KEYHASH)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint(s) in the output folder(s)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help=f"Epochs {_SPACE_DEFAULT}."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=f"Batch size {_SPACE_DEFAULT}."),
    lr: Optional[float] = typer.Option(None, "--lr", help=f"Initial learning rate, cosine to 0 {_SPACE_DEFAULT}."),
    momentum: Optional[float] = typer.Option(None, "--momentum", help=f"SGD momentum {_SPACE_DEFAULT}."),
    nesterov: Optional[bool] = typer.Option(None, "--nesterov/--no-nesterov", help=f"Nesterov momentum {_SPACE_DEFAULT}."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help=f"Weight decay {_SPACE_DEFAULT}."),
    channels: Optional[int] = typer.Option(None, "--channels", help=f"Initial channels {_SPACE_DEFAULT}."),
    layers: Optional[int] = typer.Option(None, "--layers", help=f"Depth knob of the space's network (nb201: cells per stage; darts: cells) {_SPACE_DEFAULT}."),
    cutout: Optional[int] = typer.Option(None, "--cutout", help=f"Cutout square side, 0 = off {_SPACE_DEFAULT}."),
    drop_path: Optional[float] = typer.Option(None, "--drop-path", help=f"Final drop-path probability, ramped linearly, for networks that take it (darts) {_SPACE_DEFAULT}."),
    aux_weight: Optional[float] = typer.Option(None, "--aux-weight", help=f"Auxiliary-head loss weight, 0 = no head, for networks that have one (darts) {_SPACE_DEFAULT}."),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help=f"Gradient-norm clip, 0 = off {_SPACE_DEFAULT}."),
    train_images: Optional[int] = typer.Option(None, "--train-images", help="Train on the first N training images (quick runs)."),
    test_images: Optional[int] = typer.Option(None, "--test-images", help="Evaluate on the first N test images."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="cifar10, cifar100, imagenet16-120 or synthetic (default: cifar10, or the run's)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder holding the dataset (default: $EVONAS_DATA or the cache, or the run's)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the weights and the data order (default: 0)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="With RUN_DIR: trainings at once as Ray tasks (default: one per GPU, else 1)."),
    address: Optional[str] = typer.Option(None, "--address", help="With RUN_DIR: join this Ray cluster (HOST:PORT or auto); one GPU per task."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
) -> None:
    """Train a genotype (--space/--genotype) or a search run's best (RUN_DIR --top K, --front, --pick) with the published recipe."""
    from evonas.progress import training
    from evonas.training import train_genotype

    overrides = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum, "nesterov": nesterov,
        "weight_decay": weight_decay, "channels": channels, "layers": layers, "cutout": cutout,
        "drop_path": drop_path, "aux_weight": aux_weight, "grad_clip": grad_clip, "train_images": train_images,
        "test_images": test_images, "dataset": dataset, "data_dir": str(data_dir) if data_dir else None, "seed": seed,
    }
    if (run_dir is None) == (genotype is None):
        raise EvonasError("give either a run folder (evonas train RUN_DIR --top K) or --space and --genotype")
    if run_dir is None and (space is None or top is not None or workers is not None or address is not None
                            or front or pick is not None):
        raise EvonasError("--genotype needs --space; --top, --front, --pick, --workers and --address go with a RUN_DIR")
    if sum([top is not None, front, pick is not None]) > 1:
        raise EvonasError("choose one of --top K, --front and --pick BOUNDS")
    if run_dir is not None and (space is not None or out is not None):
        raise EvonasError("with a RUN_DIR the space comes from the run and the output goes to RUN_DIR/train/; drop --space/--out")
    if run_dir is None:
        with training() as bars:
            results = [train_genotype(space, genotype, out, overrides, resume=resume, device=device, progress=bars)]
        print_train_results(results)
    else:
        train_run_top(run_dir, top or 1, overrides, resume=resume, workers=workers, address=address, device=device,
                      front=front, pick=pick)
