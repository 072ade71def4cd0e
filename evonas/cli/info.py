"""Commands that show things: spaces, estimators, a cell (``arch``), a dataset, the calibration.

Library imports sit inside the commands (here and in every command module): they pull in
torch and Ray, which ``--help`` and the cheap commands should not pay for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from evonas.cli.app import app, console, say
from evonas.errors import EvonasError
from evonas.recipes import default_recipe
from evonas.settings import DEFAULT_BATCH_SIZE, DEFAULT_CALIBRATION_ARCHS, DEFAULT_DATASET, DEFAULT_SPACE


@app.command()
def spaces() -> None:
    """List the search spaces: name, origin, number of cells, ops, default population/sample and training recipe."""
    import search_spaces

    table = Table("space", "source", "cells", "ops", "P / S", "training recipe", "description")
    for name, cls in search_spaces.available().items():
        space = cls()
        size = space.size()
        shown = "-" if not size else f"{size:,}" if size < 10**9 else f"{size:.2e}"
        recipe = default_recipe(space)
        network = ", ".join(f"{k} {getattr(recipe, k)}" for k in space.network_knobs)
        summary = (f"{recipe.name}: {recipe.epochs} epochs, batch {recipe.batch_size}, lr {recipe.lr:g}, "
                   f"wd {recipe.weight_decay:g}" + (f"; {network}" if network else ""))
        population, sample = space.population_sample
        table.add_row(name, search_spaces.origin(name), shown, ", ".join(space.ops), f"{population} / {sample}",
                      summary, space.description)
    console.print(table)


@app.command("estimators")
def estimators_cmd() -> None:
    """List the zero-cost estimators (what each needs, where it comes from, what it measures) and composites."""
    import estimators
    from evonas.scoring.composite import RECOMMENDED, parse_composite

    table = Table("name", "needs", "source", "description")
    for name, cls in estimators.available().items():
        needs = [what for what, flag in (("data", cls.needs_data), ("labels", cls.needs_labels),
                                         ("interval", cls.needs_calibration)) if flag]
        package = cls.__module__.split(".")[0]
        source = "built-in" if package == "estimators" else f"plugin {package}"
        table.add_row(name, ", ".join(needs) or "-", source, cls.description)
    console.print(table)
    composites = Table("composite", "parts", "why")
    for name, why in RECOMMENDED.items():
        composites.add_row(name, f"parts: {', '.join(parse_composite(name).names)}", why)
    console.print(composites)
    say("Any estimators joined by + form a composite (a part may carry a weight: sweet+jacov=0.5): each part is "
        "normalised by statistics fixed on the calibration sample, and the composite is their weighted sum.")


@app.command("calibrate")
def calibrate_cmd(
    space: str = typer.Option(DEFAULT_SPACE, "--space", help="Search space whose cells are sampled."),
    dataset: str = typer.Option(DEFAULT_DATASET, "--dataset", help="Dataset of the calibration batch."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder (default $EVONAS_DATA or the user cache)."),
    archs: int = typer.Option(DEFAULT_CALIBRATION_ARCHS, "--archs", min=1, help="Architectures whose depth trends are averaged."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Images in the calibration batch."),
    seed: int = typer.Option(0, "--seed", help="Seed of the architectures, weights and batch."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute even when cached (the fresh result is stored)."),
) -> None:
    """Calibrate the Sweetimator gradient interval (cached per space/dataset/batch size) and show every bin."""
    from evonas.progress import counted
    from evonas.scoring import cache_path, calibration_for

    with counted() as bar:
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
    say(f"interval: [{lo:g}, {hi:g}) over {result.num_networks} networks; {where} {cache_path()}")


@app.command("arch")
def arch_cmd(
    genotype: str = typer.Argument(..., help="Genotype string (for darts either text form)."),
    space: str = typer.Option(DEFAULT_SPACE, "--space", help="Search space of the genotype."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="The space's benchmark table (e.g. NB-201, NB-101, NB-301 cells): show the cell's trained accuracies."),
    classes: int = typer.Option(10, "--classes", min=1, help="Classes of the networks whose parameters are counted."),
    draw: Optional[Path] = typer.Option(None, "--draw", help="Also draw the cell(s) to FILE (.png or .svg)."),
) -> None:
    """Show a cell: its nodes, canonical key, parameter counts and (with --truth) true accuracies; draw it."""
    import search_spaces
    from evonas.drawing import draw_genotype

    sp = search_spaces.get(space)
    g = sp.from_str(genotype)
    if truth is not None and not sp.truth_columns:
        raise EvonasError(f"--truth needs a space with a benchmark table; {space} declares none (truth_columns)")
    if draw is not None:
        say(f"drawing: {draw_genotype(space, genotype, draw)}")

    def count(options: dict) -> int:
        return sum(p.numel() for p in sp.build(g, classes, **options).parameters())

    say(f"{space} genotype: {sp.to_str(g)}")
    say(sp.describe(g))
    say(f"canonical key: {sp.canonical_key(g)}")
    evaluation = sp.training_options(default_recipe(sp).to_dict(), inference=True)  # train-only parts: not counted
    say(f"parameters: {count(evaluation):,} (evaluation network, {classes} classes)")
    proxy = sp.proxy_options()
    if proxy != evaluation:
        described = ", ".join(f"{k}={v}" for k, v in proxy.items())
        say(f"            {count(proxy):,} (scoring proxy, {described})")
    if truth is None:
        return
    match = sp.benchmark(truth).match(sp.to_str(g), list(sp.truth_columns.values()))
    if match is None:
        say(f"true accuracy: neither this cell nor an isomorphic one is in {truth}")
        return
    how = "matched by exact genotype" if match.how == "exact" else f"matched by isomorphic cell {match.arch}"
    say(f"true accuracy ({how}; {match.class_size} row(s) of its isomorphism class in the table):")
    for column, value in match.accuracies.items():
        say(f"  {column:<16} {value:.2f}")


@app.command("data")
def data_cmd(
    dataset: str = typer.Argument(DEFAULT_DATASET, help="cifar10, cifar100, imagenet16-120 or synthetic."),
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
