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
import numpy as np
from scipy.stats import rankdata

from evonas.correlating.runner import EstimatorRun
from evonas.correlating.stats import CONVENTIONS, over_seeds, valid
from evonas.runs import library_versions
from evonas.settings import format_cost
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
        scatter_plot(out_dir / f"scatter_{label(run, multi_seed).replace(':', '-')}.png", run, cells, run.stats(cells))
    summary = {"settings": settings, "versions": library_versions(extra=("scipy",)), "conventions": CONVENTIONS,
               "results": run_results(cells, runs)}
    (out_dir / "summary.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n")
    return summary


#: Everything after this line of a ``--markdown`` file is written by hand and kept when the tool rewrites it.
NOTES = "<!-- notes below: kept when `evonas correlate --markdown` rewrites this file -->"
#: The statistics of a markdown row: (summary key, heading, digits).
MARKDOWN_COLUMNS = (("spearman", "Spearman", 3), ("kendall", "Kendall", 3), ("top1_precision", "P@1%", 3),
                    ("top5_precision", "P@5%", 3), ("top10_precision", "P@10%", 3), ("ndcg100", "nDCG@100", 3),
                    ("top_ranked_truth", "top-1 acc.", 2), ("top_ranked_truth_rank", "its rank", 0),
                    ("size_bucket_spearman", "in-size rho", 3))


def _cell(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.0f}" if digits == 0 else f"{value:.{digits}f}"


def _stat(res: dict[str, Any], key: str, digits: int) -> str:
    """A statistic, ``mean ± sd`` where several seeds were scored."""
    text = _cell(res.get(key), digits)
    spread = res.get("std", {}).get(key) if "std" in res else None
    return f"{text} ± {_cell(spread, max(digits, 1) if digits else 1)}" if spread is not None and text != "-" else text


def results_table(sections: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """One markdown table over several folders: a row per (folder label, estimator) of ``run_results``."""
    lines = ["| cells | estimator | scored | " + " | ".join(h for _, h, _ in MARKDOWN_COLUMNS) + " |",
             "|---|---|--:|" + "--:|" * len(MARKDOWN_COLUMNS)]
    for name, results in sections:
        for estimator, res in results.items():
            lines.append(f"| {name} | `{estimator}` | {res['scored']:,.0f}/{res['n']:,.0f} | "
                         + " | ".join(_stat(res, k, d) for k, _, d in MARKDOWN_COLUMNS) + " |")
    return lines


def selection_lines(sel: dict[str, Any]) -> list[str]:
    """``--select``'s result as markdown: the first split's shown candidates, then every split's picks."""
    heads = [(k, h, d) for k, h, d in MARKDOWN_COLUMNS if k != "top10_precision"]
    lines = [f"### Selection on {sel['folder']} ({sel['space']}, seed {sel['seed']}, {sel['cells']:,} cells)", "",
             f"Split 0: selection half {sel['selection_cells']:,} cells, report half {sel['report_cells']:,} "
             f"(halves by isomorphism class); {sel['candidates']:,} candidates (singles, `<name> after params`, "
             f"composites of 2 to {sel['max_parts']} parts with weights {', '.join(f'{w:g}' for w in sel['weights'])}"
             f"). Ordered on the selection half by the mean rank of {', '.join(sel['criteria'])}; every number "
             "below is on the **report half**. Normalisation: "
             f"{json.dumps(sel['normalisation'], sort_keys=True)}.", "",
             "| fitness | head rank | " + " | ".join(h for _, h, _ in heads) + " |", "|---|--:|" + "--:|" * len(heads)]
    for row in sel["rows"]:
        tag = f" ({row['tag']})" if row["tag"] else ""
        lines.append(f"| `{row['name']}`{tag} | {row['head_rank'] or '-'} | "
                     + " | ".join(_cell(row.get(k), d) for k, _, d in heads) + " |")
    n = len(next(iter(sel["splits"].values())))
    lines += ["", f"Over {n} seeded split(s) (seeds 0-{n - 1}): report-half mean ± sd of what each rule picks.", "",
              "| rule | P@1% | P@5% | top-1 acc. | its rank (median) | in-size rho | Spearman | picked |",
              "|---|--:|--:|--:|--:|--:|--:|---|"]
    for rule, picks in sel["splits"].items():
        counts: dict[str, int] = {}
        for pick in picks:
            counts[pick["name"]] = counts.get(pick["name"], 0) + 1
        ranks = [p["top_ranked_truth_rank"] for p in picks if p["top_ranked_truth_rank"] is not None]
        lines.append(f"| {rule} | " + " | ".join(_mean_sd([p[k] for p in picks]) for k in (
            "top1_precision", "top5_precision", "top_ranked_truth")) + f" | {_cell(float(np.median(ranks)), 0) if ranks else '-'} | "
            + " | ".join(_mean_sd([p[k] for p in picks]) for k in ("size_bucket_spearman", "spearman"))
            + " | " + ", ".join(f"`{k}` x{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) + " |")
    return lines + [""]


def _mean_sd(values: Sequence[Any]) -> str:
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "-"
    return f"{vals[0]:.3f}" if len(vals) == 1 else f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1):.3f}"


def bound_lines(bound: dict[str, Any]) -> list[str]:
    """``--front-cost``'s result (``front_bound.folder_bounds``) as markdown: one table per cost."""
    lines = []
    for cost, res in bound["costs"].items():
        heads = [f"regret @{format_cost(cost, b)}" for b in res["budgets"]]
        ref_cost, ref_acc = res["reference"]
        lines += [f"### Front bound under `{cost}`: {bound['folder']} ({bound['space']}, seed {bound['seed']}, "
                  f"{bound['coverage']})", "",
                  f"Each fitness's exact Pareto front (score max, {cost} min) over the {res['measured']:,} cells "
                  f"measured in {cost}, judged by their true accuracy: the best any search with that fitness "
                  f"can return. Regret = the table's best true accuracy under the budget minus the front's (points; "
                  f"- : no front cell under it); HV ratio against the table's true front ({res['true_front_size']} "
                  f"cells), reference ({format_cost(cost, ref_cost)}, {ref_acc:.2f}).", "",
                  "| fitness | front size | HV ratio | " + " | ".join(heads) + " |",
                  "|---|--:|--:|" + "--:|" * len(heads)]
        for name, row in res["fitness"].items():
            plain, tag = name.partition(" (")[::2]
            lines.append(f"| `{plain}`{' (' + tag if tag else ''} | {row['front_size']:,} | {row['hv_ratio']:.3f} | "
                         + " | ".join(_cell(r, 2) for r in row["regret"]) + " |")
        lines.append("")
    return lines


def write_markdown(path: Path, command: str, sections: Sequence[tuple[str, dict[str, Any]]],
                   selections: Sequence[dict[str, Any]] = (), title: str = "Rank consistency",
                   computed: bool = False, bounds: Sequence[dict[str, Any]] = ()) -> None:
    """``--markdown``: the results table (and any selection and front bound) under the command that
    regenerates them; whatever follows ``NOTES`` in an existing file is kept."""
    kept = path.read_text().partition(NOTES)[2] if path.is_file() else ""
    lines = [f"# {title}", "", f"Generated by `{command}` from the stored scores (nothing re-scored). "
             "Columns: `evonas/correlating/stats.py` (`CONVENTIONS` in each summary.json); failed cells are left out "
             "and counted in *scored*; with several seeds a value is the mean ± sd over seeds."
             + (" Composites (`--composites`) are computed from the stored part scores by `Composite.combine` with "
                "the calibration-sample normalisation (the score a live composite gives; no time measured)."
                if computed else ""), "",
             *results_table(sections), ""]
    for sel in selections:
        lines += selection_lines(sel)
    for bound in bounds:
        lines += bound_lines(bound)
    path.write_text("\n".join(lines) + f"\n{NOTES}{kept or chr(10)}")
