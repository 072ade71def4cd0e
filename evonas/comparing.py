"""Several search runs side by side against a benchmark table: what each returned, and how good its front is.

``evonas compare RUN... --truth TABLE`` answers the questions a benchmark of searches asks over
seeds: the true accuracy of the cell each run returned (its best-scored feasible cell, or its
training-refined choice), the gap to the best table cell that meets the run's constraints, and
for multi-objective runs the front's regret per budget and hypervolume ratio
(``evonas.searching.front_quality``), with the mean and worst over the runs. Nothing is scored.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

from evonas.errors import EvonasError
from evonas.runs import RunRecord
from evonas.searching.front_quality import front_quality_of, table_cells
from evonas.settings import format_cost
from evonas.training.refine import read_refinement

#: A returned cell this close to the best feasible one counts as finding it (NB-201 lists 94.36 and
#: 94.37 for the two best cells, which differ by noise of the benchmark's training runs).
AT_BEST = 0.01


def best_feasible(cells: Sequence[Mapping[str, Any]], constraints: Mapping[str, float]) -> float:
    """The best true accuracy of a costed table cell within ``constraints`` (any cell without them)."""
    return max(c["accuracy"] for c in cells
               if all(0 <= c["costs"][name] <= bound for name, bound in constraints.items()))


def run_row(run_dir: Path, truth: str | Path, budgets: Mapping[str, Sequence[float]] | None) -> dict[str, Any]:
    """One run: its settings in brief, the returned cell with its true accuracy and gap, its front's quality."""
    record = RunRecord.open(run_dir)
    summary = record.summary(1)
    search = record.settings().search
    names = list(dict.fromkeys([*search.constraints, *(summary.get("front_objectives") or [])]))
    cells, bench, column = table_cells(run_dir, truth, names)  # the table costed once, for both uses
    best = summary["best"]
    refined = read_refinement(run_dir)
    returned = refined["chosen"]["genotype"] if refined and refined.get("complete") else (best or {}).get("genotype")
    accuracy = None if returned is None else bench.accuracy(returned, column)
    ceiling = best_feasible(cells, search.constraints)
    row: dict[str, Any] = {
        "run": str(run_dir), "seed": search.seed, "estimator": search.estimator, "algorithm": search.algorithm or "aging",
        "evaluations": summary["evaluations"], "elapsed": summary["elapsed"], "refined": bool(refined),
        "genotype": returned, "true_accuracy": accuracy, "best_feasible": ceiling,
        "gap": None if accuracy is None else ceiling - accuracy,
        "constraints": {name: format_cost(name, v) for name, v in search.constraints.items()},
    }
    if summary.get("front"):
        row["front_quality"] = front_quality_of(summary, cells, bench, column, budgets)
    return row


def _spread(values: Sequence[float]) -> dict[str, float] | None:
    return None if not values else {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def compare_runs(run_dirs: Sequence[Path], truth: str | Path,
                 budgets: Mapping[str, Sequence[float]] | None = None) -> dict[str, Any]:
    """Every run's row and the spread over runs of the returned accuracy, the gap, regrets and hypervolumes."""
    if not run_dirs:
        raise EvonasError("compare needs at least one run folder")
    rows = [run_row(Path(r), truth, budgets) for r in run_dirs]
    gaps = [r["gap"] for r in rows if r["gap"] is not None]
    out: dict[str, Any] = {
        "runs": rows, "truth": str(truth),
        "true_accuracy": _spread([r["true_accuracy"] for r in rows if r["true_accuracy"] is not None]),
        "gap": _spread(gaps), "at_best": sum(round(g, 6) <= AT_BEST for g in gaps),
    }
    fronts = [r["front_quality"] for r in rows if "front_quality" in r]
    if fronts:
        out["fronts"] = {}
        for name in fronts[0]:
            of_cost = [f[name] for f in fronts if name in f]
            regrets = list(zip(*(f["regret"] for f in of_cost)))
            out["fronts"][name] = {
                "budgets": of_cost[0]["budgets"],
                "regret": [_spread([r for r in per_budget if r is not None]) for per_budget in regrets],
                "hv_ratio": _spread([f["hv_ratio"] for f in of_cost]),
            }
    return out


def comparison_markdown(result: Mapping[str, Any], title: str = "Search runs against the table") -> str:
    """The comparison as markdown tables (one per run, then the fronts' regret and hypervolume)."""
    lines = [f"# {title}", "", f"Truth: `{result['truth']}`.", "",
             "| run | seed | estimator | algorithm | constraints | evaluations | s | returned true acc. | best feasible | gap |",
             "|---|--:|---|---|---|--:|--:|--:|--:|--:|"]
    for r in result["runs"]:
        acc = "-" if r["true_accuracy"] is None else f"{r['true_accuracy']:.2f}"
        gap = "-" if r["gap"] is None else f"{r['gap']:.2f}"
        limits = ", ".join(f"{k} <= {v}" for k, v in r["constraints"].items()) or "-"
        lines.append(f"| `{Path(r['run']).name}` | {r['seed']} | `{r['estimator']}` | {r['algorithm']}"
                     f"{' + refine' if r['refined'] else ''} | {limits} | {r['evaluations']} | {r['elapsed']:.0f} "
                     f"| {acc} | {r['best_feasible']:.2f} | {gap} |")
    if result["true_accuracy"]:
        acc, gap = result["true_accuracy"], result["gap"]
        lines += ["", f"Returned cell: mean {acc['mean']:.2f} (min {acc['min']:.2f}, max {acc['max']:.2f}); "
                      f"gap to the best feasible cell mean {gap['mean']:.2f}, worst {gap['max']:.2f}; "
                      f"{result['at_best']} of {len(result['runs'])} runs returned a cell within {AT_BEST} of it."]
    for name, front in result.get("fronts", {}).items():
        lines += ["", f"Front over `{name}`: regret = the table's best true accuracy under the budget minus the "
                      "best of the front's cells under it.", "", "| budget | mean regret | worst |", "|--:|--:|--:|"]
        for budget, spread in zip(front["budgets"], front["regret"]):
            cells = ("-", "-") if spread is None else (f"{spread['mean']:.2f}", f"{spread['max']:.2f}")
            lines.append(f"| {format_cost(name, budget)} | {cells[0]} | {cells[1]} |")
        hv = front["hv_ratio"]
        lines += ["", f"Hypervolume ratio to the table's true front: mean {hv['mean']:.3f} "
                      f"(min {hv['min']:.3f}, max {hv['max']:.3f})."]
    return "\n".join(lines) + "\n"
