"""What a fitness's own exact front can reach under a cost: a bound on any search with it, before searching.

A multi-objective search with fitness F and cost C returns at best the Pareto front of (F: max,
C: min) over every cell of the space. A finished correlate folder over a whole benchmark table
holds F of every cell, so that front can be taken exactly, and judged by the cells' true accuracy
with ``evonas.fronts.front_quality`` (regret per budget, hypervolume ratio), the measures
``evonas show --truth`` and ``evonas compare`` give a search's front. No search with F can do
better: a fitness whose bound misses a budget target cannot meet it, however long it searches.

- The front is the exact non-dominated set: a cell is on it when no cell is cheaper-or-equal and
  scored higher-or-equal with one of the two strict. Cells tied in both stay (a search may hold
  any of them), so the bound is the optimistic one. A failed score (NaN) is never on a front (a
  search never keeps one), but the cell still counts in the table the front is judged against.
- Costs are the search's own (``evonas.costs``): ``params`` the deployed network's parameters
  (millions, kept in the manifest), ``flops`` its FLOPs (``CostModel``), or a measured column of a
  ``--cost-table`` (a negative entry: not measured, the cell is out of that cost's front and table).
- Over a sample of the table (not every cell of the space) the numbers are those of the scored
  cells only; ``coverage`` says which, and the reports label it. A table of some of a space's cells
  (NB-301's for DARTS) bounds a search over those cells, not over the space.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

import search_spaces
from evonas.correlating.folder import StoredFolder
from evonas.correlating.runner import TABLE_PREFIX
from evonas.correlating.selection import folder_normalisation, library_composite
from evonas.costs import CostModel, CostTable
from evonas.costs.table_front import direct_costs, table_costs
from evonas.errors import EvonasError
from evonas.fronts import front_quality
from evonas.scoring.composite import RECOMMENDED, is_composite, parse_composite
from evonas.settings import COSTS

#: Below this many cells the FLOPs are counted cell by cell: ``table_costs``' fast path pays ~3 s once.
FEW_CELLS = 30
#: Appended to a registry-recommended composite's name (as ``--select`` tags its fixed rows).
FIXED = " (fixed)"


def exact_front(scores: Sequence[float], costs: Sequence[float]) -> list[int]:
    """Positions of the cells on the (score: max, cost: min) Pareto front, cheapest first (ties kept).

    Cells with a non-finite score or a negative (unmeasured) cost take no part. One sort and a
    sweep: a cell is on the front when its score is the best of its cost and beats every cheaper cell's.
    """
    cells = [i for i, (s, c) in enumerate(zip(scores, costs)) if math.isfinite(s) and c >= 0]
    cells.sort(key=lambda i: (costs[i], -scores[i], i))
    front: list[int] = []
    cheaper_best = -math.inf  # the best score of every strictly cheaper cell
    k = 0
    while k < len(cells):
        cost, top = costs[cells[k]], scores[cells[k]]
        group_end = k
        while group_end < len(cells) and costs[cells[group_end]] == cost:
            group_end += 1
        if top > cheaper_best:
            front += [i for i in cells[k:group_end] if scores[i] == top]
            cheaper_best = top
        k = group_end
    return front


def fitness_bound(scores: Sequence[float], costs: Sequence[float], truth: Sequence[float],
                budgets: Sequence[float] | None = None) -> dict[str, Any]:
    """``front_quality`` of the fitness's exact front against every measured cell, with its size."""
    front = exact_front(scores, costs)
    table = [(c, t) for c, t in zip(costs, truth) if c >= 0]
    if not table:
        raise EvonasError("no cell is measured in this cost: every entry is negative (not measured)")
    return {**front_quality([(costs[i], truth[i]) for i in front], table, budgets), "front_size": len(front)}


@dataclass
class Coverage:
    """How many of the table's cells a folder scored; the bound is exact only when it scored them all."""

    scored: int
    total: int | None  # None: the table's size is not known (a sample of a table the space does not list)
    listed: bool = True  # the table is every cell of the space (NB-201), not a table of some of them (NB-301)

    @property
    def whole(self) -> bool:
        return self.total is not None and self.scored >= self.total

    def label(self) -> str:
        if self.whole:
            return f"all {self.scored:,} cells" + ("" if self.listed else " of its table, which the space exceeds: "
                                                   "a bound on a search over these cells")
        of = f" of {self.total:,}" if self.total is not None else " (a sample)"
        return f"over the {self.scored:,} scored cells{of}, not the whole table: no bound on a search of the space"


def coverage(folder: StoredFolder) -> Coverage:
    """The folder's cells against its table: the space's own cell list where it has one (NB-201),
    else every row of its ``--archs-file`` (whole) or a ``--sample`` of ``--truth`` (not whole)."""
    archs = {c.arch for c in folder.cells}
    order = search_spaces.get(folder.space).benchmark_order()
    if order is not None:
        return Coverage(len(set(order) & archs), len(set(order)))
    record = folder.manifest.data["record"]
    whole = bool(record.get("archs_file")) and record.get("sample") is None
    return Coverage(len(folder.cells), len(folder.cells) if whole else None, listed=False)


def folder_costs(folder: StoredFolder, names: Sequence[str], cost_table: Path | None = None) -> dict[str, list[float]]:
    """Each cost of ``names`` for every cell of ``folder``, in the search's units (``evonas.costs``)."""
    table = CostTable.read(folder.space, cost_table) if cost_table is not None else None
    known = (*(n for n in COSTS if n != "latency"), *(table.columns if table is not None else ()))
    for name in names:
        if name == "latency":
            raise EvonasError("--front-cost latency needs the search's latency table, which a correlate folder does "
                              "not hold; pass a measured column instead (--cost-table T --front-cost pixel3_latency)")
        if name not in known:
            hint = "" if table is not None else " (a measured cost needs --cost-table)"
            raise EvonasError(f"unknown cost {name!r} for --front-cost; costs are {', '.join(known)}{hint}")
    genotypes = [c.arch for c in folder.cells]
    out: dict[str, list[float]] = {}
    if "params" in names:
        out["params"] = list(folder.params)  # CostModel's deployed parameters, kept in the manifest
    if "flops" in names:
        model = CostModel(folder.space, folder.manifest.data["record"]["dataset"], ["flops"])
        few = len(genotypes) < FEW_CELLS
        out["flops"] = [c["flops"] for c in ([direct_costs(model, g) for g in genotypes] if few
                                             else table_costs(model, genotypes))]
    measured = [n for n in names if n not in COSTS]
    if measured:
        rows = _table_rows(table, genotypes)
        for name in measured:
            out[name] = [table.values[name][r] for r in rows]
    return {name: out[name] for name in names}


def _table_rows(table: CostTable, genotypes: Sequence[str]) -> list[int]:
    """Each genotype's row of the cost table; one line naming how many cells it lacks."""
    rows, missing = [], []
    for genotype in genotypes:
        try:
            rows.append(table.row(genotype))
        except EvonasError:
            missing.append(genotype)
    if missing:
        raise EvonasError(f"the cost table {table.path} has no row for {len(missing):,} of the folder's "
                          f"{len(genotypes):,} cells (first: {missing[0]}); it must cost every scored cell")
    return rows


def fitness_columns(folder: StoredFolder, composites: Sequence[str] = ()) -> tuple[dict[str, list[float]], list[str]]:
    """Every fitness as a score per cell (first seed, as ``--select``), and the composites skipped.

    The folder's estimators and table columns, the ``--composites`` given, and the registry's
    recommended composites whose parts it scored (named ``<spec> (fixed)``). Composites are the
    library's own, as ``--composites`` makes them (``library_composite``: ``Composite.combine``
    with ``folder_normalisation``), for the first seed only so no other seed is normalised.
    """
    seed = int(folder.manifest.data["seeds"][0])
    runs = {r.name: r for r in folder.runs if r.seed == seed}
    columns = {name: list(r.scores) for name, r in runs.items()}
    singles = {n for n in runs if not is_composite(n) and not n.startswith(TABLE_PREFIX)}
    given = {parse_composite(spec).name: spec for spec in composites}
    fixed = {parse_composite(spec).name: spec for spec in RECOMMENDED
             if set(parse_composite(spec).names) <= singles and parse_composite(spec).name not in given}
    skipped = []
    for name, spec in {**given, **fixed}.items():
        parts = parse_composite(spec).names
        if name in columns:  # the folder scored it, or --composites already added it
            continue
        if not set(parts) <= singles:
            skipped.append(spec)
            continue
        norms = folder_normalisation(folder, list(parts), seed)
        scores = library_composite(spec, {n: np.asarray(runs[n].scores) for n in parts},
                                   {n: runs[n].settings for n in parts}, norms)
        columns[name + (FIXED if name in fixed else "")] = [float(x) for x in scores]
    return columns, skipped


def folder_bounds(folder: StoredFolder, costs: Mapping[str, Sequence[float]],
                  budgets: Mapping[str, Sequence[float]] | None = None,
                  fitness: Mapping[str, Sequence[float]] | None = None) -> dict[str, Any]:
    """Per cost: every fitness's ``fitness_bound`` (``fitness``: default ``fitness_columns``), with the
    table's reference point and true front size, and the folder's ``coverage``."""
    if fitness is None:
        fitness = fitness_columns(folder)[0]
    truth = [c.truth for c in folder.cells]
    out: dict[str, Any] = {}
    for name, values in costs.items():
        wanted = (budgets or {}).get(name)
        rows = {label: fitness_bound(scores, values, truth, wanted) for label, scores in fitness.items()}
        first = next(iter(rows.values()))
        out[name] = {"budgets": first["budgets"], "reference": first["reference"],
                     "true_front_size": first["true_front_size"], "measured": sum(v >= 0 for v in values),
                     "fitness": {label: {k: r[k] for k in ("front_size", "hv_ratio", "regret")}
                                 for label, r in rows.items()}}
    cover = coverage(folder)
    return {"folder": str(folder.path), "space": folder.space, "seed": int(folder.manifest.data["seeds"][0]),
            "cells": len(folder.cells), "whole": cover.whole, "coverage": cover.label(), "costs": out}
