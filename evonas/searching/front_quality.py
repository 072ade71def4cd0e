"""How good a run's Pareto front is against its space's benchmark table, per cost of the run.

``evonas show --truth`` and the multi-objective benchmark recipe both read it from here: the
table's cells are costed with the run's own cost model (the CPU latency table and the measured
cost table the run recorded), so the front is judged in exactly the costs it was searched in.
The measures themselves (regret per budget, hypervolume ratio, reference point) are
``evonas.fronts``'s.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from evonas.costs import CostModel, LatencyTable, read_cost_table
from evonas.costs.table_front import cost_points, costed_cells, front_cells
from evonas.fronts import front_quality
from evonas.runs import RunRecord


def table_cells(run_dir: Path, truth: str | Path, names: Sequence[str],
                progress: Callable[[int, int], None] | None = None) -> tuple[list[dict[str, Any]], Any, str]:
    """Every cell of the ``truth`` table as ``{"genotype", "costs", "accuracy"}`` in the run's costs
    ``names``, with the table and its accuracy column (the run's dataset)."""
    import search_spaces

    record = RunRecord.open(run_dir)
    search = record.settings().search
    space = search_spaces.get(search.space)
    bench, column = space.benchmark(truth), space.truth_column(search.dataset)
    latency = LatencyTable.from_dict(record.read_latency_table()) if "latency" in names else None
    model = CostModel(search.space, search.dataset, list(names), latency, read_cost_table(search))
    rows = bench.cells(column)
    bench.check_genotypes(rows)
    return costed_cells(model, [(c.arch, c.truth) for c in rows], progress), bench, column


def front_quality_of(summary: Mapping[str, Any], cells: Sequence[dict[str, Any]], bench: Any, column: str,
                     budgets: Mapping[str, Sequence[float]] | None = None) -> dict[str, Any]:
    """``run_front_quality`` over table ``cells`` already costed in (at least) the front's costs."""
    quality = {}
    for name in summary.get("front_objectives") or []:
        front = [(rec["costs"][name], acc) for rec in summary["front"]
                 if (acc := bench.accuracy(rec["genotype"], column)) is not None]
        table = [(cost, acc) for cost, acc, _ in cost_points(cells, name)]
        quality[name] = {**front_quality(front, table, (budgets or {}).get(name)), "front_size": len(front)}
    return quality


def run_front_quality(run_dir: Path, truth: str | Path, budgets: Mapping[str, Sequence[float]] | None = None,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Per cost objective of the run: ``evonas.fronts.front_quality`` of its front's true (cost,
    accuracy) points against every table cell's; ``budgets`` per cost (default: spread over the
    table's range). Also the table's true front, for the picture."""
    summary = RunRecord.open(run_dir).summary(0)
    names = summary.get("front_objectives") or []
    if not names:
        return {"costs": {}, "true_front": []}
    cells, bench, column = table_cells(run_dir, truth, names, progress)
    return {"costs": front_quality_of(summary, cells, bench, column, budgets), "true_front": front_cells(cells, names)}
