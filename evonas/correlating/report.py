"""What ``evonas correlate`` leaves behind: per-cell scores (CSV), a summary (JSON), one scatter per estimator."""
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
from evonas.correlating.stats import CONVENTIONS, valid
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


def write_scores_csv(path: Path, cells: Sequence[Cell], runs: Sequence[EstimatorRun]) -> None:
    """One row per cell: arch, truth, one score column per estimator (``nan`` = failed)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch", "truth", *(r.name for r in runs)])
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
    summary = {"settings": settings, "versions": library_versions(extra=("scipy",)), "conventions": CONVENTIONS,
               "results": results}
    (out_dir / "summary.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n")
    return summary
