"""Scoring a set of cells with several estimators through the one scoring path.

Reads the cells from a benchmark table (``space.benchmark(path)``), resolves each
estimator's settings with ``evonas.scoring.resolve_scoring`` (the Sweetimator interval
included) once per seed, and scores on an executor the cells whose score the ``ScoreStore``
lacks. Failed scores become NaN, counted and left out of the statistics.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import search_spaces
from evonas.correlating.stats import summarize
from evonas.correlating.store import ScoreStore, run_label, score_key
from evonas.costs import CostModel
from evonas.data import load_dataset
from evonas.errors import EvonasError
from evonas.execution import Executor, JobResult, RaySession, make_executor
from evonas.scoring import estimator_class, resolve_scoring
from evonas.settings import ScoringSettings
from search_spaces.benchmark import Cell

#: The name of a table column's run: ``table:synflow``.
TABLE_PREFIX = "table:"


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
    seed: int = 0

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
    #: Seeds of weight init and batches, one scoring each; None: ``seed`` (which alone draws the cell sample).
    seeds: tuple[int, ...] | None = None

    @property
    def score_seeds(self) -> tuple[int, ...]:
        return self.seeds or (self.seed,)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds 0,1,2``: distinct integers, in the order given."""
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise EvonasError(f"--seeds {text!r} is not a comma-separated list of integers (e.g. 0,1,2)") from None
    if len(set(seeds)) != len(seeds):
        raise EvonasError(f"--seeds {text!r} repeats a seed")
    return seeds


def sample_cells(cells: Sequence[Any], n: int, seed: int) -> list[Any]:
    """``n`` distinct cells drawn by ``random.Random(seed)`` (same seed, same cells)."""
    if n < 1:
        raise EvonasError(f"--sample must be at least 1, not {n}")
    if n > len(cells):
        raise EvonasError(f"--sample {n} is larger than the table ({len(cells)} cells); pass at most {len(cells)}")
    return random.Random(seed).sample(list(cells), n)


def _table_rows(space: str, truth: str | Path | None, archs_file: str | Path | None,
                sample: int | None, seed: int) -> tuple[Any, list[int]]:
    """The table and the row indices to score: ``sample`` seeded-random rows of ``truth``, or every row."""
    if (truth is None) == (archs_file is None):
        raise EvonasError("pass exactly one of --truth FILE (with --sample N) or --archs-file FILE")
    table = search_spaces.get(space).benchmark(truth if truth is not None else archs_file)
    rows = list(range(len(table)))
    if sample is not None:
        rows = sample_cells(rows, sample, seed)  # the draw depends on the count only, so rows and cells agree
    elif truth is not None:
        raise EvonasError("--truth needs --sample N (how many random cells to score)")
    return table, rows


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
    table, rows = _table_rows(space, truth, archs_file, sample, seed)
    every = table.cells(column)
    cells = [every[i] for i in rows]
    table.check_genotypes(cells)
    return cells


def load_table_columns(
    space: str,
    columns: Sequence[str],
    *,
    truth: str | Path | None = None,
    archs_file: str | Path | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> dict[str, list[float]]:
    """``--table-columns``: each named numeric column of the table, for the cells ``load_cells`` gives.

    A benchmark table may ship another implementation's proxy scores (NAS-Bench-Suite-Zero's
    ``synflow``, ``params``...); correlating them beside evonas's own scores shows both on the
    same cells. Nothing is scored.
    """
    table, rows = _table_rows(space, truth, archs_file, sample, seed)
    out = {}
    for column in columns:
        if column not in table.header:
            raise EvonasError(f"--table-columns: {table.path} has no column {column!r}; it has: "
                              f"{', '.join(table.header)}")
        every = table.cells(column)
        out[column] = [every[i].truth for i in rows]
    return out


def table_runs(columns: Mapping[str, Sequence[float]], positions: Sequence[int], params: Sequence[float],
               source: str | None, seed: int = 0) -> list[EstimatorRun]:
    """A table column as a run named ``table:<column>`` (no time, no failures), over ``positions``."""
    runs = []
    for column, values in columns.items():
        run = EstimatorRun(f"{TABLE_PREFIX}{column}", {"column": column, "table": source}, params=params, seed=seed)
        for p in positions:
            run.add(values[p], 0.0, None)
        runs.append(run)
    return runs


def cell_params(space: str, cells: Sequence[Cell], dataset: str) -> list[float]:
    """Parameters (millions) of each cell's deployed network, as ``--max-params`` counts them.

    Shapes only (the meta device), so this costs milliseconds per cell and no scoring.
    """
    costs = CostModel(space, dataset, ["params"])
    return [costs(cell.arch, cell.arch)["params"] for cell in cells]


def score_positions(executor: Executor, jobs: Mapping[int, str], on_result: Callable[[JobResult], None]) -> None:
    """Score ``jobs`` (job id -> genotype) on ``executor``; ``on_result`` gets each result as it
    arrives (in any order on a pool). A job id is the eval id, so the same id gets the same batches."""
    for job_id, arch in jobs.items():
        executor.submit(job_id, arch)
    while executor.pending():
        for res in executor.wait():
            on_result(res)


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
    results: dict[int, JobResult] = {}

    def keep(res: JobResult) -> None:
        results[res.job_id] = res
        if on_cell is not None:
            on_cell(res.job_id, res.score if res.ok else None, res.seconds, res.error)

    score_positions(executor, {start + i: cell.arch for i, cell in enumerate(cells)}, keep)
    run = EstimatorRun(config.estimator, dict(config.estimator_settings), seed=config.seed)
    for i in range(start, start + len(cells)):
        res = results[i]
        run.add(res.score if res.ok else None, res.seconds, res.error)
    return run


def stored_run(store: ScoreStore, key: str, name: str, seed: int, settings: dict[str, Any],
               positions: Sequence[int], params: Sequence[float]) -> EstimatorRun:
    """The run of one (estimator, seed) over the cells at ``positions``, read from ``store`` (all present)."""
    run = EstimatorRun(name, dict(settings), params=params, seed=seed)
    for p in positions:
        line = store.get(key, p)
        if line is None:
            raise EvonasError(f"no {name} score (seed {seed}) for cell {p}; score it first")
        run.add(line["score"] if line["status"] == "ok" else None, line["seconds"], line["error"])
    return run


@contextlib.contextmanager
def one_ray_session(kind: str, workers: int | None, needed: bool) -> Iterator[None]:
    """One Ray for every estimator's pool: each ``RayExecutor`` joins it instead of starting (and
    stopping) its own, so only the actors are made per estimator."""
    if kind != "ray" or not needed:
        yield
        return
    session = RaySession(num_cpus=max(os.cpu_count() or 1, workers or 0))
    try:
        yield
    finally:
        session.close()


def data_record(space: str, data: Any) -> dict[str, Any]:
    """What summary.json says about the data the estimators saw."""
    return {"name": data.name, "images": len(data), "synthetic": data.synthetic, "resolution": data.resolution,
            "num_classes": data.num_classes, "build_options": search_spaces.get(space).proxy_options()}


def correlate(
    cells: Sequence[Cell],
    settings: CorrelateSettings,
    progress: Callable[[str, int], None] | None = None,
    executor: str = "local",
    workers: int | None = None,
    calibration_progress: Callable[[int, int], None] | None = None,
    store: ScoreStore | None = None,
    positions: Sequence[int] | None = None,
    on_resolved: Callable[[dict[str, dict[str, Any]]], None] | None = None,
    known_params: Sequence[float] | None = None,
) -> tuple[list[EstimatorRun], dict[str, Any]]:
    """Score the cells at ``positions`` (default all) with every estimator and seed; runs in that order.

    Only what ``store`` lacks is scored, each result added to it as it comes (job id = cell
    position, so a shard or a resume gets the batches of a whole run). ``on_resolved`` gets
    ``{"estimator@seed": {"key", "settings"}}`` before any scoring. ``progress(name, k)``: k
    more cells of ``name`` done; ``calibration_progress(done, total)`` while a Sweetimator
    interval is calibrated; ``known_params``: every cell's parameters if already counted (a resumed
    folder's manifest keeps them). ``settings.interval`` goes to the estimators that take one; it is
    an error when none does. A fresh Scorer per (estimator, seed) keeps estimators from seeing
    models another has changed; the seeded init and fixed batches make each model identical.
    """
    takes_interval = {name: estimator_class(name).needs_calibration for name in settings.estimators}
    if settings.interval is not None and not any(takes_interval.values()):
        raise EvonasError(f"--interval only applies to the Sweetimator family, not {', '.join(settings.estimators)}")
    data = load_dataset(settings.dataset, split="train", data_dir=settings.data_dir)
    store = store if store is not None else ScoreStore()
    positions = list(range(len(cells)) if positions is None else positions)
    configs = {
        (name, seed): resolve_scoring(
            settings.space, name, dataset=settings.dataset, data_dir=settings.data_dir,
            batch_size=settings.batch_size, seed=seed, interval=settings.interval if takes_interval[name] else None,
            calibration_progress=calibration_progress, data=data,
        )
        for name in settings.estimators for seed in settings.score_seeds
    }
    keys = {run: score_key(config) for run, config in configs.items()}
    if on_resolved is not None:
        on_resolved({run_label(*run): {"key": keys[run], "settings": config.estimator_settings}
                     for run, config in configs.items()})
    todo = {run: store.missing(keys[run], positions) for run in configs}
    with one_ray_session(executor, workers, any(todo.values())):
        for (name, seed), config in configs.items():
            if progress is not None:
                progress(name, len(positions) - len(todo[name, seed]))
            if not todo[name, seed]:
                continue

            def keep(res: JobResult, name: str = name, seed: int = seed) -> None:
                store.add(keys[name, seed], name, seed, cells[res.job_id].arch, res)
                if progress is not None:
                    progress(name, 1)

            with make_executor(config, executor, workers, dataset=data if executor == "local" else None) as pool:
                score_positions(pool, {p: cells[p].arch for p in todo[name, seed]}, keep)
    params = ([float(known_params[p]) for p in positions] if known_params is not None
              else cell_params(settings.space, [cells[p] for p in positions], settings.dataset))
    runs = [stored_run(store, keys[name, seed], name, seed, config.estimator_settings, positions, params)
            for (name, seed), config in configs.items()]
    return runs, data_record(settings.space, data)
