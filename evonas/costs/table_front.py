"""Every cell of a benchmark table with its costs, and the table's true fronts (best true accuracy per cost).

``evonas show RUN --truth CSV`` draws, beside the run's front, the best true accuracy the whole
table reaches at each cost. That needs the costs of every table cell (15,625 for NAS-Bench-201),
exactly as ``CostModel`` computes them, within seconds: ``CostModel`` builds and traces one
meta-device network per cell (0.05-0.15 s each here, so 15-40 minutes for NB-201).

Fast path (spaces that describe their repeated cell, ``SearchSpace.cell_plan``; NB-201 does),
exact by construction. ``CostModel`` counts a network as a fixed part (stem, reductions, head) plus
one term per searchable op: its parameters for every op module that exists, its FLOPs and its
table latency for every op *call*, and an op's term depends only on the op module and its input
shape. A network that repeats one cell therefore has costs that follow from

- the terms of each (unit, slot, op), read once from the networks of the space's
  ``uniform_cells`` (one op in every slot: every slot exists and is called), plus the fixed part; and
- which slots of the cell have a module and which are called, in order: the space's ``cell_plan``.

Parameters and FLOPs are summed as integers and latency in the network's call order, then rounded
as ``CostModel`` rounds, so the values are the same numbers, not approximations. Measured costs of a
cost table (``evonas.costs.table``) are read from the cell's own row on either path. The fast path
also recomputes a few cells with ``CostModel`` each time and refuses to answer if any differs (a
change to the network that the space's ``cell_plan`` did not follow). Every other space takes the
general path, ``CostModel`` cell by cell (slow, with a progress callback). Caching every cell's costs on disk was the alternative; it would still
need the slow first pass (tens of minutes per dataset and latency table) and a cache key for each
table, which the fast path makes unnecessary: all 15,625 NB-201 cells take 2-4 s on a loaded
2-core machine, most of it the five reference networks and the check.
"""
from __future__ import annotations

import json
import random
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from evonas.costs.counts import call_flops, flops_count, params_count
from evonas.costs.latency import WHOLE_GRAPH, op_key
from evonas.costs.model import ROUND, CostModel
from evonas.costs.network import meta_network, traced_ops
from evonas.errors import EvonasError
from evonas.fronts import staircase
from search_spaces.base import CellPlan

#: Cells recomputed with ``CostModel`` every time the fast path runs (a guard, not the test).
CHECKS = 3
def true_front(model: CostModel, cells: Sequence[tuple[str, float]],
               progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """The table cells on the (cost, true accuracy) front of some cost of ``model``, cheapest first.

    ``cells`` are (genotype, true accuracy), e.g. every row of a benchmark table. Each returned cell
    is ``{"genotype", "costs": {every cost of model}, "accuracy"}``; the union over costs is
    returned, so the front of any one cost is ``staircase`` of these cells' (that cost, accuracy)
    over those that have it (a cost table's negative entries are cells it has no measurement of).
    """
    return front_cells(costed_cells(model, cells, progress), model.names)


def costed_cells(model: CostModel, cells: Sequence[tuple[str, float]],
                 progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Every (genotype, true accuracy) of ``cells`` as ``{"genotype", "costs", "accuracy"}``, in order."""
    costs = table_costs(model, [g for g, _ in cells], progress)
    return [{"genotype": g, "costs": c, "accuracy": acc} for c, (g, acc) in zip(costs, cells)]


def cost_points(cells: Sequence[dict[str, Any]], name: str) -> list[tuple[float, float, int]]:
    """(cost ``name``, accuracy, position) of the cells measured in it (a negative entry is no measurement)."""
    return [(c["costs"][name], c["accuracy"], i) for i, c in enumerate(cells) if c["costs"][name] >= 0]


def front_cells(cells: Sequence[dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """The ``costed_cells`` on the (cost, accuracy) front of some cost of ``names``, cheapest first."""
    chosen = {index: None for name in names for _, _, index in staircase(cost_points(cells, name))}
    return sorted((cells[i] for i in chosen),
                  key=lambda c: (tuple(c["costs"][n] for n in names), -c["accuracy"]))


def table_costs(model: CostModel, genotypes: Sequence[str],
                progress: Callable[[int, int], None] | None = None) -> list[dict[str, float]]:
    """The costs ``model.names`` of each genotype's own network (not its isomorphism class's first).

    Exact: the fast path where the space describes its repeated cell (see the module docstring),
    else ``CostModel`` cell by cell; either reports ``progress(done, total)`` now and then.
    """
    space = model.space
    if genotypes and space.uniform_cells() and space.cell_plan(space.from_str(genotypes[0])) is not None:
        return _RepeatedCellCosts(model).check(genotypes).costs(genotypes, progress)
    out = []
    for done, genotype in enumerate(genotypes, 1):
        out.append(direct_costs(model, genotype))
        if progress:
            progress(done, len(genotypes))
    return out


def direct_costs(model: CostModel, genotype: str) -> dict[str, float]:
    """``CostModel``'s costs of this very genotype (keyed by the string, so no isomorphic stand-in)."""
    return model(genotype, "genotype " + genotype)


def _named_ops(unit: nn.Module) -> Iterable[tuple[str, nn.Module]]:
    """(name, module) of a unit's searchable ops, as the default ``SearchSpace.op_modules`` finds them (slot = ModuleDict key)."""
    for child_name, child in unit.named_children():
        if isinstance(child, nn.ModuleDict):
            yield from ((f"{child_name}.{k}", m) for k, m in child.items())
        elif isinstance(child, nn.ModuleList):
            yield from ((f"{child_name}.{k}", m) for k, m in enumerate(child))


class _Reference:
    """Per unit, per (slot, op): the op module and its input shape, in one network setting.

    Read from the network of each of the space's ``uniform_cells``; the fixed part (parameters and
    FLOPs outside the searchable ops) from every one of them, which must agree.
    """

    def __init__(self, model: CostModel, num_classes: int, options: dict[str, Any], images: torch.Tensor,
                 image_side: int, count: bool) -> None:
        space = model.space
        self.calls: list[dict[tuple[str, str], tuple[nn.Module, torch.Size]]] = []
        fixed: set[tuple[int, int]] = set()
        for genotype in space.uniform_cells():
            graph = space.from_str(genotype)
            ops = {slot: op for slot, op in space.cell_plan(graph).built}
            net = meta_network(space, graph, num_classes, options)
            where = {id(m): (u, name) for u, unit in enumerate(space.depth_units(net)) for name, m in _named_ops(unit)}
            for module, x in traced_ops(space, net, images):
                u, name = where[id(module)]
                while len(self.calls) <= u:
                    self.calls.append({})
                slot = _slot_name(name)
                self.calls[u][slot, ops[slot]] = (module, x.shape)
            if count:
                (p_all, p_ops), (f_all, f_ops) = params_count(space, net), flops_count(space, net, image_side)
                fixed.add((p_all - p_ops, f_all - f_ops))
        self.calls = [unit for unit in self.calls if unit]  # units without searchable ops (reductions) drop out
        if count and len(fixed) != 1:
            raise EvonasError(f"{space.name}'s fixed part differs between cells ({sorted(fixed)}); "
                              "the table front's fast path no longer applies")
        self.fixed_params, self.fixed_flops = fixed.pop() if count else (0, 0)


#: ``_Reference`` with counts per (space, classes, build options, image side): tracing the uniform
#: cells takes seconds, and ``evonas compare`` costs the same table once per run.
_COUNTED: dict[str, _Reference] = {}


def _counted_reference(model: CostModel) -> _Reference:
    """The counted reference of ``model``'s network setting, built once per process."""
    key = json.dumps([model.space.name, model.num_classes, model.options, model.image_side], sort_keys=True, default=str)
    if key not in _COUNTED:
        side = model.image_side
        _COUNTED[key] = _Reference(model, model.num_classes, model.options,
                                   torch.zeros(1, 3, side, side, device="meta"), side, count=True)
    return _COUNTED[key]


def _slot_name(name: str) -> str:
    """``edges.0_1`` -> ``0_1``: the module's key in its cell's ModuleDict."""
    return name.rpartition(".")[2]


class _RepeatedCellCosts:
    """The exact fast path for a space that describes its repeated cell (see the module docstring)."""

    def __init__(self, model: CostModel) -> None:
        self.model = model
        self.names = model.names
        self.params: dict[tuple[str, str], int] = {}
        self.flops: dict[tuple[str, str], int] = {}
        if {"params", "flops"} & set(self.names):
            ref = _counted_reference(model)
            self.fixed_params, self.fixed_flops = ref.fixed_params, ref.fixed_flops
            flops_of: dict[str, int] = {}  # an op's FLOPs depend on the op and its input shape only
            for unit in ref.calls:
                for edge_op, (module, shape) in unit.items():
                    key = op_key(module, shape)
                    if key not in flops_of:
                        flops_of[key] = call_flops(module, torch.zeros(shape, device="meta"))
                    self.params[edge_op] = self.params.get(edge_op, 0) + sum(p.numel() for p in module.parameters())
                    self.flops[edge_op] = self.flops.get(edge_op, 0) + flops_of[key]
        self.latency: list[dict[tuple[str, str], float]] = []
        if "latency" in self.names:
            table = model.latency
            s = table.settings
            images = torch.zeros(s["batch_size"], 3, s["image_side"], s["image_side"], device="meta")
            ref = _Reference(model, s["num_classes"], s["build_options"], images, s["image_side"], count=False)
            for unit in ref.calls:
                times = {}
                for edge_op, (module, shape) in unit.items():
                    key = op_key(module, shape)
                    if key not in table.ops:
                        raise EvonasError(f"the latency table has no entry for {key}; rebuild it with "
                                          f"`evonas latency build --space {model.space.name} --rebuild`")
                    times[edge_op] = table.ops[key]
                self.latency.append(times)

    def cell_costs(self, genotype: str) -> dict[str, float]:
        """The costs of one cell, summed as ``CostModel`` sums them."""
        plan = self.model.space.cell_plan(self.model.space.from_str(genotype))
        built = plan.built
        called = [(slot, op) for slot, op, _, _ in plan.calls]
        out: dict[str, float] = {}
        for name in self.names:
            if name == "params":
                out[name] = round((self.fixed_params + sum(self.params[e] for e in built)) / 1e6, ROUND)
            elif name == "flops":
                out[name] = round((self.fixed_flops + sum(self.flops[e] for e in called)) / 1e6, ROUND)
            elif name in self.model.measured:  # a cost table's column: this very genotype's row
                out[name] = self.model.table(genotype)[name]
            else:
                total = 0.0
                image_dependent = True  # the stem's output; reductions pass dependence on unchanged
                for unit in self.latency:  # the network's call order, as LatencyTable.ops_ms adds
                    timed, image_dependent = self._timed_calls(plan, image_dependent)
                    for edge_op in timed:
                        total += unit[edge_op]
                out[name] = round(self.model.latency.fixed_ms + total, ROUND)
        return out

    def _timed_calls(self, plan: CellPlan, input_dependent: bool) -> tuple[list[tuple[str, str]], bool]:
        """The calls a latency table counts in one cell, and whether the cell's output depends on the image.

        Every call counts, except with a whole-graph backend (``WHOLE_GRAPH``): there an op whose input
        does not depend on the image is folded into a constant, as ``traced_ops(constants=False)`` finds.
        """
        if self.model.latency.settings.get("backend") not in WHOLE_GRAPH:
            return [(slot, op) for slot, op, _, _ in plan.calls], True
        dependent, timed = {plan.input} if input_dependent else set(), []
        for slot, op, source, target in plan.calls:
            if source in dependent:
                timed.append((slot, op))
                dependent.add(target)
        return timed, plan.output in dependent

    def costs(self, genotypes: Sequence[str],
              progress: Callable[[int, int], None] | None = None) -> list[dict[str, float]]:
        out = []
        for done, genotype in enumerate(genotypes, 1):
            out.append(self.cell_costs(genotype))
            if progress and (done % 1000 == 0 or done == len(genotypes)):
                progress(done, len(genotypes))
        return out

    def check(self, genotypes: Sequence[str]) -> "_RepeatedCellCosts":
        """Recompute ``CHECKS`` of the cells with ``CostModel``; an EvonasError if any differs."""
        for genotype in random.Random(len(genotypes)).sample(list(genotypes), min(CHECKS, len(genotypes))):
            fast, direct = self.cell_costs(genotype), direct_costs(self.model, genotype)
            if any(abs(fast[n] - direct[n]) > 10 ** -ROUND for n in self.names):
                raise EvonasError(f"the table front's fast costs of {genotype} ({fast}) differ from CostModel's "
                                  f"({direct}); the {self.model.space.name} network changed and its cell_plan must follow")
        return self
