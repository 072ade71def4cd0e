"""Scoring a set of cells with several estimators through the one scoring path.

Reads the cells from a benchmark table (``space.benchmark(path)``), resolves each
estimator's settings with ``evonas.scoring.resolve_scoring`` (the Sweetimator interval
included), and scores every cell on an executor. Failed scores become NaN, counted and
left out of the statistics.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import search_spaces
from evonas.correlating.stats import summarize
from evonas.costs import CostModel
from evonas.data import load_dataset
from evonas.errors import EvonasError
from evonas.execution import Executor, make_executor
from evonas.scoring import estimator_class, resolve_scoring
from evonas.settings import ScoringSettings
from search_spaces.benchmark import Cell


@dataclass
class EstimatorRun:
    """Per-cell outcome of one estimator: NaN score and an error message for failures."""

    name: str
    settings: dict[str, Any]
    scores: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    #: Each cell's deployed-network parameters (millions), for the within-size statistics.
    params: Sequence[float] | None = None

    def add(self, score: float | None, seconds: float, error: str | None) -> None:
        self.scores.append(math.nan if score is None else float(score))
        self.seconds.append(seconds)
        self.errors.append(error)

    def stats(self, cells: Sequence[Cell]) -> dict[str, Any]:
        return summarize(self.scores, [c.truth for c in cells], self.seconds, self.params)


@dataclass(frozen=True)
class CorrelateSettings:
    """What `evonas correlate` scores with (besides the cells); recorded in the summary."""

    space: str
    estimators: tuple[str, ...]
    seed: int = 0
    dataset: str = "cifar10"
    data_dir: str | None = None
    batch_size: int = 64
    interval: tuple[float, float] | None = None


def sample_cells(cells: Sequence[Cell], n: int, seed: int) -> list[Cell]:
    """``n`` distinct cells drawn by ``random.Random(seed)`` (same seed, same cells)."""
    if n < 1:
        raise EvonasError(f"--sample must be at least 1, not {n}")
    if n > len(cells):
        raise EvonasError(f"--sample {n} is larger than the table ({len(cells)} cells); pass at most {len(cells)}")
    return random.Random(seed).sample(list(cells), n)


def load_cells(
    space: str,
    *,
    truth: str | Path | None = None,
    archs_file: str | Path | None = None,
    sample: int | None = None,
    seed: int = 0,
    column: str = "cifar10_test",
) -> list[Cell]:
    """The cells to score: ``sample`` seeded-random rows of ``truth``, or the rows of ``archs_file``.

    Only the cells that will be scored are parsed, so a large truth table stays cheap.
    """
    if (truth is None) == (archs_file is None):
        raise EvonasError("pass exactly one of --truth FILE (with --sample N) or --archs-file FILE")
    table = search_spaces.get(space).benchmark(truth if truth is not None else archs_file)
    cells = table.cells(column)
    if sample is not None:
        cells = sample_cells(cells, sample, seed)
    elif truth is not None:
        raise EvonasError("--truth needs --sample N (how many random cells to score)")
    table.check_genotypes(cells)
    return cells


def cell_params(space: str, cells: Sequence[Cell], dataset: str) -> list[float]:
    """Parameters (millions) of each cell's deployed network, as ``--max-params`` counts them.

    Shapes only (the meta device), so this costs milliseconds per cell and no scoring.
    """
    costs = CostModel(space, dataset, ["params"])
    return [costs(cell.arch, cell.arch)["params"] for cell in cells]


def score_cells(
    executor: Executor,
    config: ScoringSettings,
    cells: Sequence[Cell],
    on_cell: Callable[[int, float | None, float, str | None], None] | None = None,
    start: int = 0,
) -> EstimatorRun:
    """Score ``cells`` on ``executor`` (built for ``config``); results are kept in cell order.

    ``seconds`` per cell is the worker's wall time for build + estimate. Job ids (the eval
    ids) are ``start + position``, so a resumed run gets the same batches. ``on_cell`` is
    called as each result arrives (in any order on a pool).
    """
    for i, cell in enumerate(cells, start=start):
        executor.submit(i, cell.arch)
    results = {}
    while executor.pending():
        for res in executor.wait():
            results[res.job_id] = res
            if on_cell is not None:
                on_cell(res.job_id, res.score if res.ok else None, res.seconds, res.error)
    run = EstimatorRun(config.estimator, dict(config.estimator_settings))
    for i in range(start, start + len(cells)):
        res = results[i]
        run.add(res.score if res.ok else None, res.seconds, res.error)
    return run


def correlate(
    cells: Sequence[Cell],
    settings: CorrelateSettings,
    progress: Callable[[str, int], None] | None = None,
    executor: str = "local",
    workers: int | None = None,
    calibration_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[EstimatorRun], dict[str, Any]]:
    """Score ``cells`` with every estimator (one Scorer each, same seed, one shared dataset).

    Returns the runs and a record of the data used. ``progress(name, i)`` is called after
    each cell, ``calibration_progress(done, total)`` while a Sweetimator interval is
    calibrated. ``settings.interval`` goes to the estimators that take one; it is an error
    when none of them does. A fresh Scorer per estimator keeps estimators from seeing models
    another estimator has changed; the seeded init and fixed batches make each model identical.
    """
    takes_interval = {name: estimator_class(name).needs_calibration for name in settings.estimators}
    if settings.interval is not None and not any(takes_interval.values()):
        raise EvonasError(f"--interval only applies to the Sweetimator family, not {', '.join(settings.estimators)}")
    data = load_dataset(settings.dataset, split="train", data_dir=settings.data_dir)
    params = cell_params(settings.space, cells, settings.dataset)
    runs = []
    for name in settings.estimators:
        config = resolve_scoring(
            settings.space, name, dataset=settings.dataset, data_dir=settings.data_dir,
            batch_size=settings.batch_size, seed=settings.seed,
            interval=settings.interval if takes_interval[name] else None,
            calibration_progress=calibration_progress, data=data,
        )
        on_cell = (lambda i, *_, n=name: progress(n, i)) if progress else None
        with make_executor(config, executor, workers, dataset=data if executor == "local" else None) as pool:
            runs.append(score_cells(pool, config, cells, on_cell))
        runs[-1].params = params
    record = {"name": data.name, "images": len(data), "synthetic": data.synthetic, "resolution": data.resolution,
              "num_classes": data.num_classes, "build_options": search_spaces.get(settings.space).proxy_options()}
    return runs, record
