"""Rank consistency of estimators against trained accuracy (the `evonas correlate` library).

Reads ground truth (a benchmark table or any CSV of genotype strings with an accuracy
column), scores the cells with each estimator through the one scoring path
(``evonas.scoring.Scorer``), and summarises how well each estimator's ranking agrees with
the truth: Spearman rho, Kendall tau, precision of the top fraction, seconds per cell.
Failed scores are NaN, counted, and left out of the statistics.
"""
from __future__ import annotations

import csv
import json
import math
import platform
import random
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from evonas.errors import EvonasError

ARCH_COLUMNS = ("arch", "genotype")
TOP_FRACTION = 0.1


@dataclass(frozen=True)
class Cell:
    """One architecture (its genotype string) and its true accuracy."""

    arch: str
    truth: float


# ---- statistics ----------------------------------------------------------------------
def _valid(scores: Sequence[float], truth: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Scores and truth with the failed (non-finite) scores dropped."""
    s = np.asarray(scores, dtype=float)
    t = np.asarray(truth, dtype=float)
    if s.shape != t.shape:
        raise ValueError(f"{len(s)} scores for {len(t)} truth values")
    keep = np.isfinite(s)
    return s[keep], t[keep]


def _rank_stat(func: Callable, scores: Sequence[float], truth: Sequence[float]) -> float:
    s, t = _valid(scores, truth)
    if len(s) < 2:
        return math.nan
    with warnings.catch_warnings():  # constant input: scipy warns and returns NaN, which we keep
        warnings.simplefilter("ignore")
        return float(func(s, t).statistic)


def spearman(scores: Sequence[float], truth: Sequence[float]) -> float:
    """Spearman rho (ties get average ranks) over the finite scores; NaN if undefined."""
    from scipy.stats import spearmanr

    return _rank_stat(spearmanr, scores, truth)


def kendall(scores: Sequence[float], truth: Sequence[float]) -> float:
    """Kendall tau-b over the finite scores; NaN if undefined."""
    from scipy.stats import kendalltau

    return _rank_stat(kendalltau, scores, truth)


def top_k(n: int, fraction: float = TOP_FRACTION) -> int:
    """How many cells make up the top ``fraction`` of ``n`` (at least one)."""
    return max(1, round(n * fraction))


def top_precision(scores: Sequence[float], truth: Sequence[float], fraction: float = TOP_FRACTION) -> float:
    """Fraction of the truly best ``fraction`` of cells that the estimator's best ``fraction`` contains.

    Both sets have the same size k, so this is precision and recall at once. Ties are broken
    by position (earlier cell first) so the value is deterministic.
    """
    s, t = _valid(scores, truth)
    if len(s) == 0:
        return math.nan
    k = top_k(len(s), fraction)
    best_by_score = set(np.argsort(-s, kind="stable")[:k].tolist())
    best_by_truth = set(np.argsort(-t, kind="stable")[:k].tolist())
    return len(best_by_score & best_by_truth) / k


def summarize(scores: Sequence[float], truth: Sequence[float], seconds: Sequence[float]) -> dict[str, Any]:
    """The consistency numbers of one estimator over one set of cells."""
    s = np.asarray(scores, dtype=float)
    failed = int((~np.isfinite(s)).sum())
    return {
        "n": len(s),
        "scored": len(s) - failed,
        "failed": failed,
        "spearman": spearman(scores, truth),
        "kendall": kendall(scores, truth),
        "top10_precision": top_precision(scores, truth),
        "seconds_per_cell": float(np.mean(seconds)) if len(seconds) else math.nan,
    }


# ---- reading cells -------------------------------------------------------------------
def read_cells(path: str | Path, column: str, space: Any = None) -> list[Cell]:
    """Genotype strings and accuracies from a CSV with an ``arch``/``genotype`` column and ``column``.

    With ``space`` given every genotype is parsed, and the first bad one is reported by line.
    """
    path = Path(path)
    if not path.is_file():
        raise EvonasError(f"truth/archs file {path} not found; pass an existing CSV file")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        arch_col = next((c for c in ARCH_COLUMNS if c in header), None)
        if arch_col is None or column not in header:
            missing = ([] if arch_col else ["arch (or genotype)"]) + ([] if column in header else [column])
            raise EvonasError(
                f"{path} lacks the column(s) {', '.join(missing)}; it has: {', '.join(header) or 'no header'}"
                " (choose the accuracy column with --truth-column)"
            )
        cells = [_cell(row, arch_col, column, path, reader.line_num) for row in reader]
    if not cells:
        raise EvonasError(f"{path} has no data rows")
    if space is not None:
        check_genotypes(cells, space, path)
    return cells


def _cell(row: dict[str, str], arch_col: str, column: str, path: Path, line: int) -> Cell:
    try:
        truth = float(row[column])
    except (TypeError, ValueError):
        raise EvonasError(f"{path} line {line}: accuracy {row[column]!r} in column {column} is not a number") from None
    if not math.isfinite(truth):
        raise EvonasError(f"{path} line {line}: accuracy {row[column]!r} in column {column} is not finite")
    return Cell((row[arch_col] or "").strip(), truth)


def check_genotypes(cells: Sequence[Cell], space: Any, source: str | Path = "input") -> None:
    """Parse every genotype with ``space``; the first malformed one raises, naming its row."""
    from search_spaces import GenotypeError

    for row, cell in enumerate(cells, start=1):
        try:
            space.from_str(cell.arch)
        except GenotypeError as exc:
            raise EvonasError(
                f"{source} data row {row}: {cell.arch!r} is not a valid {space.name} genotype ({exc})"
            ) from None


def sample_cells(cells: Sequence[Cell], n: int, seed: int) -> list[Cell]:
    """``n`` distinct cells drawn by ``random.Random(seed)`` (same seed, same cells)."""
    if n < 1:
        raise EvonasError(f"--sample must be at least 1, not {n}")
    if n > len(cells):
        raise EvonasError(f"--sample {n} is larger than the table ({len(cells)} cells); pass at most {len(cells)}")
    return random.Random(seed).sample(list(cells), n)


def parse_estimators(text: str) -> list[str]:
    """Comma-separated estimator names, each checked against the registry, in order, no repeats."""
    import estimators

    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise EvonasError("no estimator given; pass --estimator NAME[,NAME...] (see `evonas estimators`)")
    registry = estimators.available()
    for name in names:
        if name not in registry:
            estimators.get(name)  # raises UnknownEstimatorError listing the known names
    return names


# ---- scoring -------------------------------------------------------------------------
@dataclass
class EstimatorRun:
    """Per-cell outcome of one estimator: NaN score and an error message for failures."""

    name: str
    settings: dict[str, Any]
    scores: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)

    def add(self, score: float | None, seconds: float, error: str | None) -> None:
        self.scores.append(math.nan if score is None else float(score))
        self.seconds.append(seconds)
        self.errors.append(error)

    def stats(self, cells: Sequence[Cell]) -> dict[str, Any]:
        return summarize(self.scores, [c.truth for c in cells], self.seconds)


def estimator_settings(
    name: str,
    space: str,
    dataset: str,
    data_dir: str | None,
    batch_size: int,
    seed: int,
    interval: tuple[float, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Constructor settings: the calibrated (or overridden) interval for the Sweetimator family.

    Calibration runs once per (space, dataset, batch size, ...) and is cached;
    ``progress(done, total)`` follows it when it does run.
    """
    import estimators

    if not estimators.available()[name].needs_calibration:
        return {}
    from evonas.calibration import resolve_interval

    lo, hi = resolve_interval(space, dataset, data_dir=data_dir, batch_size=batch_size, seed=seed, override=interval,
                              progress=progress)
    return {"interval": (float(lo), float(hi))}


def score_cells(
    executor: Any,
    config: Any,
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


def make_executor(config: Any, data: Any, kind: str = "local", workers: int | None = None) -> Any:
    """In-process scoring sharing the loaded ``data``, or a pool from ``evonas.executors``."""
    from evonas import executors
    from evonas.scoring import Scorer

    if kind == "local" and workers in (None, 1):
        return executors.LocalExecutor(config, scorer_factory=partial(Scorer, dataset=data))
    return executors.make_executor(config, kind, workers)


# ---- writing results -----------------------------------------------------------------
def versions() -> dict[str, str]:
    """Versions of what produced the numbers (recorded in every summary)."""
    import scipy
    import torch

    from evonas import __version__

    return {
        "evonas": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


def json_safe(value: Any) -> Any:
    """NaN/inf become null so the summary is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_scores_csv(path: Path, cells: Sequence[Cell], runs: Sequence[EstimatorRun]) -> None:
    """One row per cell: arch, truth, one score column per estimator (``nan`` = failed)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch", "truth", *(r.name for r in runs)])
        for i, cell in enumerate(cells):
            writer.writerow([cell.arch, repr(cell.truth), *(repr(r.scores[i]) for r in runs)])


def scatter_plot(path: Path, run: EstimatorRun, cells: Sequence[Cell], stats: dict[str, Any]) -> None:
    """Score rank (1 = lowest score) against true accuracy, failed cells left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import rankdata

    s, t = _valid(run.scores, [c.truth for c in cells])
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    if len(s):
        ax.scatter(rankdata(s), t, s=6, alpha=0.6)
    ax.set_xlabel(f"{run.name} score rank")
    ax.set_ylabel("true accuracy (%)")
    ax.set_title(
        f"{run.name}: rho={stats['spearman']:.3f} tau={stats['kendall']:.3f} "
        f"n={stats['scored']} failed={stats['failed']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_outputs(
    out_dir: Path, cells: Sequence[Cell], runs: Sequence[EstimatorRun], settings: dict[str, Any]
) -> dict[str, Any]:
    """Write scores.csv, summary.json and one scatter PNG per estimator; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_scores_csv(out_dir / "scores.csv", cells, runs)
    results = {}
    for run in runs:
        stats = run.stats(cells)
        errors = [e for e in run.errors if e]
        results[run.name] = {**stats, "settings": run.settings, "errors": sorted(set(errors))[:10]}
        scatter_plot(out_dir / f"scatter_{run.name}.png", run, cells, stats)
    summary = {"settings": settings, "versions": versions(), "results": results}
    (out_dir / "summary.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n")
    return summary


# ---- the whole run -------------------------------------------------------------------
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
    import search_spaces

    if (truth is None) == (archs_file is None):
        raise EvonasError("pass exactly one of --truth FILE (with --sample N) or --archs-file FILE")
    space_obj = search_spaces.get(space)
    source = truth if truth is not None else archs_file
    cells = read_cells(source, column)
    if sample is not None:
        cells = sample_cells(cells, sample, seed)
    elif truth is not None:
        raise EvonasError("--truth needs --sample N (how many random cells to score)")
    check_genotypes(cells, space_obj, source)
    return cells


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
    each cell, ``calibration_progress(done, total)`` while a Sweetimator interval is calibrated. A fresh Scorer per estimator keeps estimators from seeing models another
    estimator has changed; the seeded init and fixed batches make each model identical.
    """
    import search_spaces
    from evonas.data import load_dataset
    from evonas.scoring import ScoringConfig

    data = load_dataset(settings.dataset, split="train", data_dir=settings.data_dir)
    runs = []
    for name in settings.estimators:
        est_settings = estimator_settings(
            name, settings.space, settings.dataset, settings.data_dir, settings.batch_size, settings.seed,
            settings.interval, calibration_progress,
        )
        config = ScoringConfig(
            space=settings.space, estimator=name, estimator_settings=est_settings, dataset=settings.dataset,
            data_dir=settings.data_dir, batch_size=settings.batch_size, seed=settings.seed,
        )
        on_cell = (lambda i, *_, n=name: progress(n, i)) if progress else None
        with make_executor(config, data, executor, workers) as pool:
            runs.append(score_cells(pool, config, cells, on_cell))
    record = {"name": data.name, "images": len(data), "synthetic": data.synthetic, "resolution": data.resolution,
              "num_classes": data.num_classes, "build_options": search_spaces.get(settings.space).proxy_options()}
    return runs, record
