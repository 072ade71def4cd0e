"""What ``evonas correlate`` leaves behind: per-cell scores (CSV), a summary (JSON), one scatter per estimator.

With several seeds every (estimator, seed) gets a column ``name@seed`` and a scatter, and the
summary gives per estimator the mean and spread over seeds of each statistic.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import matplotlib.pyplot as plt
from scipy.stats import rankdata

from evonas.correlating.runner import EstimatorRun
from evonas.correlating.stats import CONVENTIONS, over_seeds, valid
from evonas.runs import library_versions
from search_spaces.benchmark import Cell

matplotlib.use("Agg")


def json_safe(value: Any) -> Any:
    """NaN/inf become null so the summary is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def label(run: EstimatorRun, multi_seed: bool) -> str:
    """A run's column and plot name: the estimator, with ``@seed`` when several seeds were scored."""
    return f"{run.name}@{run.seed}" if multi_seed else run.name


def write_scores_csv(path: Path, cells: Sequence[Cell], runs: Sequence[EstimatorRun], multi_seed: bool) -> None:
    """One row per cell: arch, truth, one score column per run (``nan`` = failed)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch", "truth", *(label(r, multi_seed) for r in runs)])
        for i, cell in enumerate(cells):
            writer.writerow([cell.arch, repr(cell.truth), *(repr(r.scores[i]) for r in runs)])


def scatter_plot(path: Path, run: EstimatorRun, cells: Sequence[Cell], stats: dict[str, Any]) -> None:
    """Score rank (1 = lowest score) against true accuracy, failed cells left out."""
    s, t = valid(run.scores, [c.truth for c in cells])
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


def _by_name(runs: Sequence[EstimatorRun]) -> dict[str, list[EstimatorRun]]:
    by_name: dict[str, list[EstimatorRun]] = {}
    for run in runs:
        by_name.setdefault(run.name, []).append(run)
    return by_name


def is_multi_seed(runs: Sequence[EstimatorRun]) -> bool:
    return any(len(group) > 1 for group in _by_name(runs).values())


def run_results(cells: Sequence[Cell], runs: Sequence[EstimatorRun]) -> dict[str, Any]:
    """Per estimator, as summary.json holds it: one seed, that run's statistics; several, their
    mean with ``std`` (sample standard deviation) and ``seeds`` (each seed's statistics) beside it."""
    multi_seed = is_multi_seed(runs)
    results = {}
    for name, group in _by_name(runs).items():
        per_seed = {run.seed: {**run.stats(cells), "settings": run.settings,
                               "errors": sorted({e for e in run.errors if e})[:10]} for run in group}
        if not multi_seed:
            results[name] = per_seed[group[0].seed]
            continue
        mean, spread = over_seeds(list(per_seed.values()))
        errors = sorted({e for stats in per_seed.values() for e in stats["errors"]})[:10]
        results[name] = {**mean, "std": spread, "seeds": {str(s): v for s, v in per_seed.items()},
                         "settings": group[0].settings, "errors": errors}
    return results


def write_outputs(
    out_dir: Path, cells: Sequence[Cell], runs: Sequence[EstimatorRun], settings: dict[str, Any]
) -> dict[str, Any]:
    """Write scores.csv, summary.json and one scatter PNG per run; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    multi_seed = is_multi_seed(runs)
    write_scores_csv(out_dir / "scores.csv", cells, runs, multi_seed)
    for run in runs:
        scatter_plot(out_dir / f"scatter_{label(run, multi_seed)}.png", run, cells, run.stats(cells))
    summary = {"settings": settings, "versions": library_versions(extra=("scipy",)), "conventions": CONVENTIONS,
               "results": run_results(cells, runs)}
    (out_dir / "summary.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n")
    return summary
