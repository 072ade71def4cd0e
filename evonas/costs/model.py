"""``CostModel``: the costs of a cell (params, flops, latency), cached by canonical key like scores,
plus measured costs from a cost table (``evonas.costs.table``), kept by genotype string.

Costs are pure functions of the cell (given the latency table and the cost table), computed in
the search driver before a child is submitted, so an infeasible child never reaches a worker.
"""
from __future__ import annotations

import random
from typing import Any, Iterable, Mapping

import search_spaces
from evonas.costs.counts import flops_split, params_split
from evonas.costs.latency import LatencyTable
from evonas.costs.table import CostTable
from evonas.costs.network import deployed_options, image_spec, meta_network
from evonas.errors import EvonasError
from evonas.settings import COSTS, format_cost

#: Digits kept in recorded costs: stable JSON, far below any measurable difference.
ROUND = 6


class CostModel:
    """Costs ``names`` of ``space``'s deployed network for ``dataset`` (latency needs a latency table,
    a cost-table column the ``table``)."""

    def __init__(self, space: str, dataset: str, names: Iterable[str], latency: LatencyTable | None = None,
                 table: CostTable | None = None) -> None:
        self.names = tuple(names)
        known = (*COSTS, *(table.columns if table is not None else ()))
        unknown = [n for n in self.names if n not in known]
        if unknown:
            raise EvonasError(f"unknown cost {unknown[0]!r}; costs are {', '.join(known)}")
        if "latency" in self.names and latency is None:
            raise EvonasError("latency costs need a latency table (evonas latency build)")
        self.space = search_spaces.get(space)
        self.num_classes, self.image_side = image_spec(dataset)
        self.options = deployed_options(self.space)
        self.latency = latency
        self.table = table
        self.own = tuple(n for n in self.names if n in COSTS)  # computed from the network
        self.measured = tuple(n for n in self.names if n not in COSTS)  # read from the cost table
        self._cache: dict[str, dict[str, float]] = {}

    def __call__(self, genotype: str, key: str) -> dict[str, float]:
        """The costs of ``genotype`` (canonical ``key``): own ones computed once per key, table ones
        looked up once per genotype string (isomorphic cells may differ on a device)."""
        held = self._cache.get(key)
        if held is None:
            held = {name: round(whole, ROUND) for name, (whole, _) in self._split(genotype).items()}
            self._cache[key] = held
        out = dict(held)
        if self.measured:
            row = self.table(genotype)
            out.update((name, row[name]) for name in self.measured)
        return {name: out[name] for name in self.names}

    def _split(self, genotype: str) -> dict[str, tuple[float, float]]:
        """Per own cost: (the whole network's, the searchable ops' share)."""
        out: dict[str, tuple[float, float]] = {}
        needs_model = {"params", "flops"} & set(self.names)
        if needs_model:
            model = meta_network(self.space, self.space.from_str(genotype), self.num_classes, self.options)
            if "params" in self.names:
                out["params"] = params_split(self.space, model)
            if "flops" in self.names:
                out["flops"] = flops_split(self.space, model, self.image_side)
        if "latency" in self.names:
            ops = self.latency.ops_ms(genotype)
            out["latency"] = (self.latency.fixed_ms + ops, ops)
        return out

    def lower_bounds(self) -> dict[str, float]:
        """What every cell costs at least: the network without its searchable ops; a table's cheapest row."""
        bounds = {name: self.table.minimum(name) for name in self.measured}
        if self.own:
            genotype = self.space.to_str(self.space.sample(random.Random(0)))
            bounds.update((name, max(whole - ops, 0.0)) for name, (whole, ops) in self._split(genotype).items())
        return bounds

    def unmeasured(self, costs: Mapping[str, float]) -> list[str]:
        """Each table cost the cell has no measurement of (a negative entry, as HW-NAS-Bench's -1 for Edge
        TPU cells it could not run): such a cell is infeasible, neither scored nor compared."""
        return [f"{name} not measured ({costs[name]:g} in {self.table.path.name})"
                for name in self.measured if costs[name] < 0]

    def fill(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Remember the own costs recorded in history lines (resume), so they are never recomputed
        (table costs are a lookup in a table checked against its recorded checksum)."""
        for rec in records:
            costs = rec.get("costs")
            if isinstance(costs, dict) and rec.get("key") is not None and set(self.own) <= costs.keys():
                self._cache.setdefault(rec["key"], {n: float(costs[n]) for n in self.own})


def violations(costs: Mapping[str, float], limits: Mapping[str, float]) -> list[str]:
    """Each broken constraint as ``params 1.21M > 1M``; empty when the cell is feasible."""
    return [f"{name} {format_cost(name, costs[name])} > {format_cost(name, limit)}"
            for name, limit in limits.items() if costs[name] > limit]


def check_satisfiable(model: CostModel, limits: Mapping[str, float]) -> None:
    """A one-line error when a constraint is below what every cell of the space costs."""
    bounds = model.lower_bounds()
    for name, limit in limits.items():
        if bounds[name] > limit:
            where = ""
            if name == "latency" and model.latency is not None:
                where = (f" on {model.latency.settings['device']} (batch {model.latency.settings['batch_size']}, "
                         f"{model.latency.settings['threads']} thread(s)); raise the bound, or measure where the "
                         "network will run (--latency-device cuda, --latency-threads)")
            if name in model.measured:
                raise EvonasError(f"--max-cost {name}={format_cost(name, limit)} excludes every row of the cost "
                                  f"table {model.table.path}: its cheapest cell costs {format_cost(name, bounds[name])}")
            raise EvonasError(f"--max-{name} {format_cost(name, limit)} excludes every cell of {model.space.name}: "
                              f"its fixed part alone costs {format_cost(name, bounds[name])}{where}")
