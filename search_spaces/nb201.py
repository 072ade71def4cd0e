"""NAS-Bench-201: a 4-node cell with one op on each of its 6 edges, in a fixed ResNet-like macro.

Genotype: ``networkx.DiGraph`` on nodes 0..3 with all 6 edges ``i -> j`` (``i < j``), each
carrying ``op``. Text form (the benchmark's own): ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``,
node 1's inputs, then node 2's, then node 3's. Node 0 is the cell input, node 3 its output.
"""
from __future__ import annotations

import functools
import itertools
import random
from typing import Any, Mapping

import networkx as nx
import torch
from torch import nn

from search_spaces import register
from search_spaces.base import CellPlan, CellSketch, GenotypeError, SearchSpace
from search_spaces.ops import ReLUConvBN, avg_pool_3x3

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
OUTPUT = NUM_NODES - 1
#: Edges in text-form order: node 1's inputs, node 2's, node 3's.
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for j in range(1, NUM_NODES) for i in range(j))
#: Ops whose output is exactly zero when their input is zero (so a zero input needs no tensor).
_ZERO_PRESERVING = frozenset({"skip_connect", "avg_pool_3x3"})
_ZERO = "#"  # canonical-key marker for a zero term
#: The truth table's test-accuracy column for each dataset (the nb201_accuracy.csv layout).
TRUTH_COLUMNS: dict[str, str] = {"cifar10": "cifar10_test", "cifar100": "cifar100_test",
                                 "imagenet16-120": "imagenet16_test"}
#: The benchmark enumerated its cells as the product of these ops over the 6 edges (first edge
#: slowest) and shuffled that list with ``random.Random(88)``: that is its index order.
BENCHMARK_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
BENCHMARK_SHUFFLE_SEED = 88


def _make_op(op: str, channels: int) -> nn.Module:
    if op == "skip_connect":
        return nn.Identity()
    if op == "avg_pool_3x3":
        return avg_pool_3x3()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, padding=1)
    raise GenotypeError(f"NB-201 op {op!r} has no module")


def _live_edges(g: nx.DiGraph) -> list[tuple[int, int, str]]:
    """Non-``none`` edges that can influence the output, in forward (topological) order."""
    live = {OUTPUT}
    for j in range(OUTPUT, 0, -1):  # a node is live if a live node reads it through a real op
        if j in live:
            live.update(i for i in range(j) if g.edges[i, j]["op"] != "none")
    return [(i, j, g.edges[i, j]["op"]) for i, j in EDGES
            if j in live and g.edges[i, j]["op"] != "none"]


class NB201Cell(nn.Module):
    """One searchable cell. ``none`` edges and edges that cannot reach the output compute nothing.

    A node whose every input is zero is kept as ``None`` (no tensor); a zero tensor is made only
    when a conv must read it (ReLU-Conv-BN of zeros is BN's bias, not zero). Modules exist for every
    non-``none`` edge, so parameter counts match the benchmark's; parameters on edges that cannot
    reach the output get no gradient.
    """

    def __init__(self, g: nx.DiGraph, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict({
            f"{i}_{j}": _make_op(g.edges[i, j]["op"], channels)
            for i, j in EDGES if g.edges[i, j]["op"] != "none"
        })
        self.plan = [(i, j, op, f"{i}_{j}") for i, j, op in _live_edges(g)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x] + [None] * OUTPUT
        zeros: torch.Tensor | None = None
        for i, j, op, name in self.plan:
            inp = nodes[i]
            if inp is None:
                if op in _ZERO_PRESERVING:
                    continue
                if zeros is None:
                    zeros = torch.zeros_like(x)
                inp = zeros
            out = self.edges[name](inp)
            nodes[j] = out if nodes[j] is None else nodes[j] + out
        result = nodes[OUTPUT]
        return torch.zeros_like(x) if result is None else result


class ResidualReduction(nn.Module):
    """NB-201's reduction block: a stride-2 basic residual block that doubles the channels."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2, padding=1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """Stem, 3 stages of ``cells_per_stage`` cells split by 2 residual reductions, BN-ReLU-GAP-linear."""

    def __init__(self, g: nx.DiGraph, num_classes: int, channels: int = 16,
                 cells_per_stage: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        units: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage:
                units.append(ResidualReduction(c, 2 * c))
                c *= 2
            units.extend(NB201Cell(g, c) for _ in range(cells_per_stage))
        self.cells = nn.ModuleList(units)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for unit in self.cells:
            x = unit(x)
        return self.classifier(self.head(x))


def _parse_entry(text: str, node: int, position: int) -> str:
    op, sep, src = text.partition("~")
    where = f"node {node}, input {position}"
    if not sep:
        raise GenotypeError(f"NB-201 genotype: {where}: expected 'op~{position}', got {text!r}")
    if op not in OPS:
        raise GenotypeError(f"NB-201 genotype: {where}: unknown op {op!r}; choose from {', '.join(OPS)}")
    if src != str(position):
        raise GenotypeError(
            f"NB-201 genotype: {where}: input must be ~{position} (inputs are listed in order), got ~{src}")
    return op


@functools.lru_cache(maxsize=16_384)
def _parse_ops(s: str) -> tuple[str, ...]:
    """The ops of the text form, in ``EDGES`` order; a ``GenotypeError`` names what is wrong.

    Remembered: evolution parses the same few thousand strings over and over.
    """
    if not isinstance(s, str):
        raise GenotypeError(f"NB-201 genotype must be a string, got {type(s).__name__}")
    text = s.strip()
    if len(text) < 2 or not (text.startswith("|") and text.endswith("|")):
        raise GenotypeError(
            f"NB-201 genotype must look like |op~0|+|op~0|op~1|+|op~0|op~1|op~2|, got {s!r}")
    groups = text[1:-1].split("|+|")
    if len(groups) != NUM_NODES - 1:
        raise GenotypeError(
            f"NB-201 genotype needs {NUM_NODES - 1} node groups joined by '+', got {len(groups)} in {s!r}")
    ops: list[str] = []
    for j, group in enumerate(groups, start=1):
        entries = group.split("|")
        if len(entries) != j:
            raise GenotypeError(f"NB-201 genotype: node {j} needs {j} inputs, got {len(entries)} ({group!r})")
        ops.extend(_parse_entry(entry, j, i) for i, entry in enumerate(entries))
    return tuple(ops)


def _ops_text(ops: tuple[str, ...]) -> str:
    """The text form of ops given in ``EDGES`` order."""
    by_edge = dict(zip(EDGES, ops))
    groups = ("|".join(f"{by_edge[i, j]}~{i}" for i in range(j)) for j in range(1, NUM_NODES))
    return "|" + "|+|".join(groups) + "|"


def _mutated(ops: tuple[str, ...], rng: random.Random) -> tuple[str, ...]:
    """One edge (drawn uniformly) gets another op (drawn uniformly from the other four)."""
    k = EDGES.index(rng.choice(EDGES))
    child = list(ops)
    child[k] = rng.choice([op for op in OPS if op != ops[k]])
    return tuple(child)


@functools.lru_cache(maxsize=16_384)
def _key_of_ops(ops: tuple[str, ...]) -> str:
    """The canonical key (see ``NB201Space.canonical_key``) of ops given in ``EDGES`` order."""
    by_edge = dict(zip(EDGES, ops))
    expr = {0: "0"}
    for j in range(1, NUM_NODES):
        terms = []
        for i in range(j):
            op = by_edge[i, j]
            if op == "none" or expr[i] == _ZERO:
                terms.append(_ZERO)
            elif op == "skip_connect":
                terms.append(expr[i])
            else:
                terms.append(f"({expr[i]})@{op}")
        expr[j] = "+".join(sorted(terms))
    return expr[OUTPUT]


@register
class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell space (15,625 cells, 6,466 isomorphism classes)."""

    name = "nb201"
    description = "NAS-Bench-201: 4-node cell, one of 5 ops per edge, fixed 3-stage macro"
    ops = OPS
    truth_columns = TRUTH_COLUMNS
    #: The published REA setting for this space (NAS-Bench-201 paper's REA baseline).
    population_sample = (25, 5)
    network_knobs = ("channels", "layers")

    def size(self) -> int:
        return len(OPS) ** len(EDGES)

    def benchmark_order(self) -> list[str]:
        """Every cell's string, position = the benchmark's own index (checked against its table)."""
        cells = [self.to_str(self._graph(dict(zip(EDGES, ops))))
                 for ops in itertools.product(BENCHMARK_OPS, repeat=len(EDGES))]
        random.Random(BENCHMARK_SHUFFLE_SEED).shuffle(cells)
        return cells

    def sample(self, rng: random.Random) -> nx.DiGraph:
        return self._graph({edge: rng.choice(OPS) for edge in EDGES})

    def mutate(self, g: nx.DiGraph, rng: random.Random) -> nx.DiGraph:
        return self._graph(dict(zip(EDGES, _mutated(self._ops(g), rng))))

    def mutate_str(self, s: str, rng: random.Random) -> str:
        """``mutate`` on the text form without building graphs (the same draws, the same child)."""
        return _ops_text(_mutated(_parse_ops(s), rng))

    def is_valid(self, g: nx.DiGraph) -> bool:
        return (isinstance(g, nx.DiGraph)
                and set(g.nodes) == set(range(NUM_NODES))
                and set(g.edges) == set(EDGES)
                and all(g.edges[e].get("op") in OPS for e in EDGES))

    # ---- text form -----------------------------------------------------------------------------
    def to_str(self, g: nx.DiGraph) -> str:
        return _ops_text(self._ops(g))

    def from_str(self, s: str) -> nx.DiGraph:
        return self._graph(dict(zip(EDGES, _parse_ops(s))))

    # ---- equivalence ---------------------------------------------------------------------------
    def canonical_key(self, g: nx.DiGraph) -> str:
        """Expression of the output: equal for cells in the same NB-201 isomorphism class.

        Each node is the sorted ``+``-sum of its incoming terms; a term is ``(input)@op``, the
        input's expression itself for ``skip_connect``, and ``#`` (zero) for ``none`` or for any
        op reading an exactly-zero node. Sorting makes the key blind to node numbering and
        summation order, and unused nodes vanish since only the output's expression counts.
        This is the benchmark's own convention (zero terms are counted, sums under a skip stay
        grouped), which yields its 6,466 classes; dropping zero terms and flattening sums would
        merge further (4,930 classes) and no longer match the published table.
        """
        return _key_of_ops(self._ops(g))

    def str_key(self, s: str) -> str:
        return _key_of_ops(_parse_ops(s))

    # ---- networks ------------------------------------------------------------------------------
    def build(self, g: nx.DiGraph, num_classes: int, **options: Any) -> nn.Module:
        self._check(g)
        unknown = set(options) - {"channels", "cells_per_stage"}
        if unknown:
            raise TypeError(f"unknown NB-201 build options: {', '.join(sorted(unknown))}")
        return NB201Network(g, num_classes, **options)

    def depth_units(self, model: nn.Module) -> list[nn.Module]:
        return list(model.cells)

    def proxy_options(self) -> dict[str, Any]:
        return {"channels": 16, "cells_per_stage": 5}

    def training_recipe(self) -> dict[str, Any]:
        """NB-201's ``200E``: the recipe its CIFAR-10 ground truth was trained with."""
        return {"name": "200E", "epochs": 200, "batch_size": 256, "lr": 0.1, "momentum": 0.9, "nesterov": True,
                "weight_decay": 5e-4, "channels": 16, "layers": 5}

    def training_options(self, recipe: Mapping[str, Any], inference: bool = False) -> dict[str, Any]:
        """The recipe's channels and cells per stage (``layers``)."""
        return {"channels": recipe["channels"], "cells_per_stage": recipe["layers"]}

    def sketches(self, g: nx.DiGraph) -> list[CellSketch]:
        self._check(g)
        edges = tuple((str(u), str(v), d["op"]) for u, v, d in sorted(g.edges(data=True)))
        return [CellSketch("cell (node 0: input, node 3: output)", ("0", "1", "2", "3"), edges)]

    def cell_plan(self, g: nx.DiGraph) -> CellPlan:
        """Modules and calls of the repeated cell (``NB201Cell``): edge ``i_j`` in ``edges``; an op
        is called when its edge is live, except a zero-preserving op reading a node nothing wrote."""
        ops = self._ops(g)
        built = tuple((f"{i}_{j}", op) for (i, j), op in zip(EDGES, ops) if op != "none")
        written, calls = {0}, []
        for i, j, op in _live_edges(g):
            if i in written or op not in _ZERO_PRESERVING:
                calls.append((f"{i}_{j}", op, str(i), str(j)))
                written.add(j)
        return CellPlan(built, tuple(calls), "0", str(OUTPUT))

    def uniform_cells(self) -> list[str]:
        """One cell per op with that op on every edge (every module exists and is called)."""
        return [_ops_text((op,) * len(EDGES)) for op in OPS]

    def describe(self, g: nx.DiGraph) -> str:
        self._check(g)
        live = {j for _, j, _ in _live_edges(g)} | {i for i, _, _ in _live_edges(g)}
        lines = []
        for j in range(1, NUM_NODES):
            terms = [f"{g.edges[i, j]['op']}(node {i})" for i in range(j) if g.edges[i, j]["op"] != "none"]
            line = f"node {j} = " + (" + ".join(terms) if terms else "0  (every input is none)")
            if j == OUTPUT:
                line += "  [output]"
            elif j not in live:
                line += "  [unused: does not reach the output]"
            lines.append(line)
        return "\n".join(lines)

    # ---- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _graph(ops: dict[tuple[int, int], str]) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(range(NUM_NODES))
        for edge in EDGES:
            g.add_edge(*edge, op=ops[edge])
        return g

    def _ops(self, g: nx.DiGraph) -> tuple[str, ...]:
        """The ops of a checked genotype, in text-form (``EDGES``) order."""
        self._check(g)
        return tuple(g.edges[e]["op"] for e in EDGES)

    def _check(self, g: nx.DiGraph) -> None:
        if not self.is_valid(g):
            raise GenotypeError(
                "not an NB-201 genotype: need a DiGraph on nodes 0..3 with the 6 edges i->j (i<j), "
                f"each with an 'op' in {', '.join(OPS)}")
