"""NAS-Bench-101: a DAG cell of at most 7 vertices and 9 edges with ops on the vertices.

Genotype: ``networkx.DiGraph`` on vertices ``0..n-1`` (``2 <= n <= 7``), each with a node
attribute ``op``: vertex 0 is ``input``, vertex ``n-1`` is ``output``, the others are
``conv3x3-bn-relu``, ``conv1x1-bn-relu`` or ``maxpool3x3``. Edges ``i -> j`` have ``i < j``
(an upper-triangular adjacency matrix) and carry no attributes. A genotype is always *pruned*,
as NB-101 prunes before it hashes or builds: every vertex lies on an input -> output path.

Text form (the benchmark's own, as in the shared table's ``matrix`` and ``ops`` columns):
``<n*n adjacency bits, row-major>:<n comma-separated ops>``. ``from_str`` prunes what it reads
(vertices off every input -> output path go; a cell whose input cannot reach its output is an
error), so a 7x7 matrix with dangling vertices parses to the smaller cell it computes;
``to_str`` writes the pruned cell. The 9-edge limit applies to the pruned cell.

Facts from NAS-Bench-101 (Ying et al., ICML 2019) and its model builder
(google-research/nasbench ``nasbench/lib/model_builder.py``); the code here is our own.
"""
from __future__ import annotations

import functools
import itertools
import math
import random
from typing import Any, Mapping

import networkx as nx
import torch
from torch import nn

from search_spaces import register
from search_spaces.base import CellSketch, GenotypeError, SearchSpace

INPUT, OUTPUT = "input", "output"
OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
MAX_VERTICES = 7
MAX_EDGES = 9
#: Unique (pruned, non-isomorphic) cells of NAS-Bench-101, as the paper counts them.
NUM_UNIQUE_CELLS = 423_624
#: Regularized-evolution mutation rate of the NB-101 paper: each of the 21 edge bits flips with
#: probability rate/7, each of the 5 inner ops changes with probability rate/5.
MUTATION_RATE = 1.0
#: The shared table's accuracy column (NAS-Bench-Suite-Zero's NB-101 validation accuracy).
TRUTH_COLUMNS: dict[str, str] = {"cifar10": "val_accuracy"}
#: Benchmark-table columns holding a cell (the NB-101 / Suite-Zero layout).
MATRIX_COLUMN, OPS_COLUMN = "matrix", "ops"

Edges = tuple[tuple[int, int], ...]  # sorted (src, dst) pairs, src < dst
Spec = tuple[tuple[str, ...], Edges]  # (ops of vertices 0..n-1, edges) of a pruned cell

_FORM = "'<n*n adjacency bits, row-major>:<n comma-separated ops>' (n <= 7)"


# ---- cells as (ops, edges) -----------------------------------------------------------------------
def _prune(ops: tuple[str, ...], edges: Edges) -> Spec | None:
    """The cell restricted to vertices on an input -> output path, renumbered in order; None if
    the input cannot reach the output."""
    n = len(ops)
    succ = {v: [j for i, j in edges if i == v] for v in range(n)}
    pred = {v: [i for i, j in edges if j == v] for v in range(n)}
    reach, back = {0}, {n - 1}
    for v in range(n):  # edges go forward, so index order is a topological order
        if v in reach:
            reach.update(succ[v])
    for v in range(n - 1, -1, -1):
        if v in back:
            back.update(pred[v])
    keep = sorted(reach & back)
    if n - 1 not in keep:
        return None
    index = {v: k for k, v in enumerate(keep)}
    kept = tuple(sorted((index[i], index[j]) for i, j in edges if i in index and j in index))
    return tuple(ops[v] for v in keep), kept


def _text(spec: Spec) -> str:
    ops, edges = spec
    n, present = len(ops), set(edges)
    bits = "".join("1" if (i, j) in present else "0" for i in range(n) for j in range(n))
    return f"{bits}:{','.join(ops)}"


def _check_ops(ops: tuple[str, ...]) -> None:
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise GenotypeError(f"NB-101 genotype: the first op must be {INPUT!r} and the last {OUTPUT!r}, "
                            f"got {ops[0]!r} and {ops[-1]!r}")
    for v, op in enumerate(ops[1:-1], start=1):
        if op not in OPS:
            raise GenotypeError(f"NB-101 genotype: vertex {v}: unknown op {op!r}; choose from {', '.join(OPS)}")


def _checked(spec: Spec) -> Spec:
    """``spec`` pruned, with the NB-101 limits checked (a ``GenotypeError`` names what is wrong)."""
    ops, edges = spec
    if not 2 <= len(ops) <= MAX_VERTICES:
        raise GenotypeError(f"NB-101 genotype: a cell has 2 to {MAX_VERTICES} vertices, got {len(ops)}")
    _check_ops(ops)
    pruned = _prune(ops, edges)
    if pruned is None:
        raise GenotypeError("NB-101 genotype: the input cannot reach the output (no input -> output path)")
    if len(pruned[1]) > MAX_EDGES:
        raise GenotypeError(f"NB-101 genotype: a cell has at most {MAX_EDGES} edges (after pruning), "
                            f"got {len(pruned[1])}")
    return pruned


@functools.lru_cache(maxsize=65_536)
def _parse(s: str) -> Spec:
    """The pruned cell of the text form. Remembered: evolution parses the same strings again and again."""
    if not isinstance(s, str):
        raise GenotypeError(f"NB-101 genotype must be a string, got {type(s).__name__}")
    bits, sep, op_text = s.strip().partition(":")
    if not sep or ":" in op_text:
        raise GenotypeError(f"NB-101 genotype must look like {_FORM}, got {s!r}")
    if not bits or set(bits) - {"0", "1"}:
        raise GenotypeError(f"NB-101 genotype: the adjacency part must be 0/1 bits, got {bits!r}")
    n = math.isqrt(len(bits))
    if n * n != len(bits) or not 2 <= n <= MAX_VERTICES:
        raise GenotypeError(f"NB-101 genotype: the adjacency part needs n*n bits for 2 <= n <= {MAX_VERTICES} "
                            f"vertices (4, 9, ..., 49), got {len(bits)}")
    ops = tuple(op.strip() for op in op_text.split(","))
    if len(ops) != n:
        raise GenotypeError(f"NB-101 genotype: a {n}x{n} adjacency matrix needs {n} ops, got {len(ops)}")
    edges = []
    for k, bit in enumerate(bits):
        i, j = divmod(k, n)
        if bit == "1":
            if j <= i:
                raise GenotypeError(f"NB-101 genotype: the adjacency matrix must be strictly upper-triangular "
                                    f"(edges i -> j with i < j), but entry ({i}, {j}) is 1")
            edges.append((i, j))
    return _checked((ops, tuple(edges)))


def _inner_orders(n: int, edges: Edges) -> list[tuple[int, ...]]:
    """Every topological order of the inner vertices 1..n-2 (input first and output last go without saying)."""
    preds = {v: {i for i, j in edges if j == v and i > 0} for v in range(1, n - 1)}
    orders: list[tuple[int, ...]] = []

    def extend(order: tuple[int, ...]) -> None:
        if len(order) == n - 2:
            orders.append(order)
            return
        for v in range(1, n - 1):
            if v not in order and preds[v] <= set(order):
                extend(order + (v,))

    extend(())
    return orders


def _forward_relabelings(spec: Spec) -> set[str]:
    """Texts of every renumbering of the cell that keeps each edge forward (one per topological order)."""
    ops, edges = spec
    n = len(ops)
    texts = set()
    for order in _inner_orders(n, edges):
        new = {0: 0, n - 1: n - 1, **{old: k for k, old in enumerate(order, start=1)}}
        new_ops = [""] * n
        for old, k in new.items():
            new_ops[k] = ops[old]
        texts.add(_text((tuple(new_ops), tuple(sorted((new[i], new[j]) for i, j in edges)))))
    return texts


@functools.lru_cache(maxsize=65_536)
def _canonical(spec: Spec) -> str:
    """Smallest text over the forward relabelings of the cell.

    Isomorphic cells have the same set of forward relabelings (an isomorphism maps topological
    orders to topological orders), so the minimum is an exact canonical form, and a valid genotype
    string.
    """
    return min(_forward_relabelings(spec))


def _pairs(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


#: Upper-triangular (matrix, ops) labellings of an n-vertex cell with at most 9 edges, and per n the
#: number of matrices with k edges (k = 0..9).
_EDGE_COUNTS = {n: [math.comb(len(_pairs(n)), k) for k in range(MAX_EDGES + 1)] for n in range(2, MAX_VERTICES + 1)}
_LABELED = {n: sum(counts) * len(OPS) ** (n - 2) for n, counts in _EDGE_COUNTS.items()}


def _random_spec(rng: random.Random) -> Spec:
    """A cell drawn uniformly from the unique (pruned, non-isomorphic) NB-101 cells.

    Proposal: uniform over every upper-triangular matrix (at most 9 edges) and op labelling of 2..7
    vertices; kept when no vertex would be pruned, and then with probability 1 / (its number of
    forward relabelings), the number of proposals that are the same cell. Each unique cell is
    therefore equally likely (about 85% of them have 7 vertices). NB-101's own ``random_spec`` (a
    random 7x7 matrix, pruned) is far from uniform: about 1 draw in 6 is the input -> output-only
    cell and only 1 in 100 has 7 vertices.
    """
    sizes, weights = list(_LABELED), list(_LABELED.values())
    while True:
        n = rng.choices(sizes, weights)[0]
        k = rng.choices(range(MAX_EDGES + 1), _EDGE_COUNTS[n])[0]
        edges = tuple(sorted(rng.sample(_pairs(n), k)))
        # Pruned already: every inner vertex has an input and an output (edges go forward, so then every
        # vertex is reachable from the input and reaches the output).
        heads, tails = {i for i, _ in edges}, {j for _, j in edges}
        if not all(v in heads and v in tails for v in range(1, n - 1)) or not edges:
            continue
        spec = ((INPUT, *(rng.choice(OPS) for _ in range(n - 2)), OUTPUT), edges)
        if rng.random() * len(_forward_relabelings(spec)) < 1:
            return spec


def _padded(spec: Spec, rng: random.Random) -> tuple[list[str], set[tuple[int, int]]]:
    """The pruned cell spread over 7 vertices: its inner vertices at random positions, the new ones
    unconnected with random ops (so a mutation can add vertices anywhere, as on NB-101's own
    unpruned matrices)."""
    ops, edges = spec
    n = len(ops)
    slots = sorted(rng.sample(range(1, MAX_VERTICES - 1), n - 2))
    where = {0: 0, n - 1: MAX_VERTICES - 1, **dict(zip(range(1, n - 1), slots))}
    full = [INPUT] + [rng.choice(OPS) for _ in range(MAX_VERTICES - 2)] + [OUTPUT]
    for old, new in where.items():
        full[new] = ops[old]
    return full, {(where[i], where[j]) for i, j in edges}


def _mutated(spec: Spec, rng: random.Random) -> Spec:
    """NB-101's REA mutation: flip each edge bit with probability 1/7 and change each inner op with
    probability 1/5, retried until the child is valid and not isomorphic to the parent."""
    parent = _canonical(spec)
    while True:
        ops, edges = _padded(spec, rng)
        for pair in _pairs(MAX_VERTICES):
            if rng.random() < MUTATION_RATE / MAX_VERTICES:
                edges ^= {pair}
        for v in range(1, MAX_VERTICES - 1):
            if rng.random() < MUTATION_RATE / (MAX_VERTICES - 2):
                ops[v] = rng.choice([op for op in OPS if op != ops[v]])
        child = _prune(tuple(ops), tuple(sorted(edges)))
        if len(edges) <= MAX_EDGES and child is not None and _canonical(child) != parent:
            return child


# ---- networks -------------------------------------------------------------------------------------
class ConvBNReLU(nn.Sequential):
    """Conv (no bias, 'same' padding) -> BN -> ReLU: NB-101's convolution ops and input projections."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=False))


def _vertex_op(op: str, channels: int) -> nn.Module:
    if op == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    return ConvBNReLU(channels, channels, 3 if op == "conv3x3-bn-relu" else 1)


def vertex_channels(edges: Edges, n: int, c_in: int, c_out: int) -> list[int]:
    """Channels of every vertex, as NB-101 splits them.

    The output's channels are divided evenly over the inner vertices that feed it (the first ones
    get one more when it does not divide); any other inner vertex gets the largest channel count of
    the inner vertices it feeds, going backwards.
    """
    channels = [c_in] + [0] * (n - 2) + [c_out]
    feeds_out = [v for v in range(1, n - 1) if (v, n - 1) in edges]
    if len(feeds_out) > c_out:
        raise ValueError(f"NB-101 cell: {c_out} output channels cannot be split over {len(feeds_out)} vertices")
    if feeds_out:
        share, extra = divmod(c_out, len(feeds_out))
        for k, v in enumerate(feeds_out):
            channels[v] = share + (1 if k < extra else 0)
    for v in range(n - 3, 0, -1):
        if (v, n - 1) not in edges:
            channels[v] = max(channels[d] for d in range(v + 1, n - 1) if (v, d) in edges)
    return channels


class NB101Cell(nn.Module):
    """One NB-101 module: the input is projected (1x1 conv-BN-ReLU) to each vertex it feeds; a vertex
    sums its inputs (inner ones truncated to its channels) and applies its op; the output is the
    concat of the inner vertices feeding it, plus the projected input when input -> output is an edge
    (or that projection alone when no inner vertex feeds it)."""

    def __init__(self, spec: Spec, c_in: int, c_out: int) -> None:
        super().__init__()
        ops, edges = spec
        n = len(ops)
        self.last = n - 1
        self.channels = vertex_channels(edges, n, c_in, c_out)
        self.sources = {t: [s for s in range(1, t) if (s, t) in edges] for t in range(1, n)}
        self.projections = nn.ModuleDict({str(t): ConvBNReLU(c_in, self.channels[t], 1)
                                          for t in range(1, n) if (0, t) in edges})
        self.vertices = nn.ModuleDict({str(t): _vertex_op(ops[t], self.channels[t]) for t in range(1, n - 1)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: list[torch.Tensor] = [x]
        for t in range(1, self.last):
            terms = [values[s][:, : self.channels[t]] for s in self.sources[t]]
            if str(t) in self.projections:
                terms.append(self.projections[str(t)](x))
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            values.append(self.vertices[str(t)](total))
        into_output = [values[s] for s in self.sources[self.last]]
        projected = self.projections[str(self.last)](x) if str(self.last) in self.projections else None
        if not into_output:
            assert projected is not None  # a pruned cell without inner inputs to the output has input -> output
            return projected
        out = torch.cat(into_output, dim=1) if len(into_output) > 1 else into_output[0]
        return out if projected is None else out + projected


class NB101Network(nn.Module):
    """The NB-101 network: stem conv3x3-BN-ReLU to ``channels``; ``stacks`` stacks of ``cells_per_stack``
    cells; before every stack but the first a 2x2 max-pool (stride 2), after which the stack's first
    cell doubles the channels; global average pool; linear."""

    def __init__(self, spec: Spec, num_classes: int, channels: int = 128, stacks: int = 3,
                 cells_per_stack: int = 3) -> None:
        super().__init__()
        if channels < 1 or stacks < 1 or cells_per_stack < 1:
            raise ValueError(f"NB-101 network needs channels, stacks and cells_per_stack >= 1, "
                             f"got {channels}, {stacks}, {cells_per_stack}")
        self.stem = ConvBNReLU(3, channels, 3)
        units: list[nn.Module] = []
        c = channels
        for stack in range(stacks):
            c_out = 2 * c if stack else c
            if stack:
                units.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))  # TF 'same' on odd sizes
            for _ in range(cells_per_stack):
                units.append(NB101Cell(spec, c, c_out))
                c = c_out
        self.units = nn.ModuleList(units)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for unit in self.units:
            x = unit(x)
        return self.classifier(x.mean(dim=(2, 3)))


# ---- the space -----------------------------------------------------------------------------------
@register
class NB101Space(SearchSpace):
    """The NAS-Bench-101 cell space (423,624 unique cells)."""

    name = "nb101"
    description = "NAS-Bench-101: DAG cell, <= 7 vertices / 9 edges, ops on vertices; 3x3-cell 128-ch net"
    ops = OPS
    truth_columns = TRUTH_COLUMNS
    #: The NB-101 paper's regularized evolution: population 100, tournament sample 10.
    population_sample = (100, 10)
    network_knobs = ("channels",)
    genotype_columns = f"{MATRIX_COLUMN} and {OPS_COLUMN} (or arch / genotype)"

    def size(self) -> int:
        """Unique cells after pruning and isomorphism, as the NB-101 paper counts them (a constant)."""
        return NUM_UNIQUE_CELLS

    def sample(self, rng: random.Random) -> nx.DiGraph:
        """A cell drawn uniformly from the 423,624 unique cells (see ``_random_spec``)."""
        return self._graph(_random_spec(rng))

    def mutate(self, g: nx.DiGraph, rng: random.Random) -> nx.DiGraph:
        """NB-101's REA mutation (edge bits and ops flipped at random), never isomorphic to ``g``."""
        return self._graph(_mutated(self._spec(g), rng))

    def mutate_str(self, s: str, rng: random.Random) -> str:
        """``mutate`` on the text form without building graphs (the same draws, the same child)."""
        return _text(_mutated(_parse(s), rng))

    def is_valid(self, g: nx.DiGraph) -> bool:
        try:
            self._spec(g)
        except GenotypeError:
            return False
        return True

    # ---- text form -----------------------------------------------------------------------------
    def to_str(self, g: nx.DiGraph) -> str:
        return _text(self._spec(g))

    def from_str(self, s: str) -> nx.DiGraph:
        return self._graph(_parse(s))

    def canonical_key(self, g: nx.DiGraph) -> str:
        """The text of the cell's smallest forward relabeling: equal exactly for isomorphic pruned cells."""
        return _canonical(self._spec(g))

    def str_key(self, s: str) -> str:
        return _canonical(_parse(s))

    def genotype_of_row(self, row: Mapping[str, str | None]) -> str | None:
        """NB-101 tables give a cell as ``matrix`` and ``ops`` columns, joined here as ``matrix:ops``."""
        if MATRIX_COLUMN in row and OPS_COLUMN in row:
            return f"{row[MATRIX_COLUMN] or ''}:{row[OPS_COLUMN] or ''}"
        return super().genotype_of_row(row)

    # ---- networks ------------------------------------------------------------------------------
    def build(self, g: nx.DiGraph, num_classes: int, **options: Any) -> nn.Module:
        spec = self._spec(g)
        unknown = set(options) - {"channels", "stacks", "cells_per_stack"}
        if unknown:
            raise TypeError(f"unknown NB-101 build options: {', '.join(sorted(unknown))}")
        return NB101Network(spec, num_classes, **options)

    def depth_units(self, model: nn.Module) -> list[nn.Module]:
        """The cells in forward order. The 2x2 max-pools between stacks are not units: they hold no
        weights, so they have no share of weights in any gradient bin to trend with."""
        return [unit for unit in model.units if isinstance(unit, NB101Cell)]

    def proxy_options(self) -> dict[str, Any]:
        """The published network at 16 stem channels (stacks of 16, 32, 64) instead of 128.

        Same depth and cell structure, so the depth trends the Sweetimator calibrates on are the
        published network's; the full width costs 7 to 10 s per Sweetimator score on one CPU thread
        (batch 64), this one about 0.8 s.
        """
        return {"channels": 16, "stacks": 3, "cells_per_stack": 3}

    def training_recipe(self) -> dict[str, Any]:
        """NB-101's schedule on evonas's SGD trainer.

        NB-101 trained 108 epochs, batch 256, cosine decay, weight decay 1e-4, with RMSProp (lr 0.2,
        momentum 0.9, epsilon 1); the trainer here is SGD only, so SGD momentum 0.9 at lr 0.1 takes
        RMSProp's place. Numbers trained this way are not NB-101's own.
        """
        return {"name": "nb101-108-sgd", "epochs": 108, "batch_size": 256, "lr": 0.1, "momentum": 0.9,
                "nesterov": False, "weight_decay": 1e-4, "channels": 128}

    def training_options(self, recipe: Mapping[str, Any], inference: bool = False) -> dict[str, Any]:
        """The recipe's channels are the stem's output channels."""
        return {"channels": recipe["channels"]}

    def sketches(self, g: nx.DiGraph) -> list[CellSketch]:
        ops, edges = self._spec(g)
        names = [str(v) for v in range(len(ops))]
        return [CellSketch("cell (ops on vertices; output = concat of its inputs)", tuple(names),
                           tuple((names[i], names[j], "") for i, j in edges),
                           node_ops={names[v]: op for v, op in enumerate(ops)})]

    def describe(self, g: nx.DiGraph) -> str:
        ops, edges = self._spec(g)
        n = len(ops)
        lines = [f"vertex 0 = input ({n} vertices, {len(edges)} edges; the input reaches a vertex through a "
                 "1x1 projection)"]
        for t in range(1, n - 1):
            sources = ["projection(input)" if s == 0 else f"vertex {s}" for s in range(t) if (s, t) in edges]
            lines.append(f"vertex {t} = {ops[t]}(" + " + ".join(sources) + ")")
        inner = [f"vertex {s}" for s in range(1, n - 1) if (s, n - 1) in edges]
        out = "concat(" + ", ".join(inner) + ")" if inner else ""
        if (0, n - 1) in edges:
            out = f"{out} + projection(input)" if out else "projection(input)"
        lines.append(f"vertex {n - 1} = output = {out}")
        return "\n".join(lines)

    # ---- graph <-> (ops, edges) ----------------------------------------------------------------
    @staticmethod
    def _graph(spec: Spec) -> nx.DiGraph:
        ops, edges = spec
        g = nx.DiGraph()
        g.add_nodes_from((v, {"op": op}) for v, op in enumerate(ops))
        g.add_edges_from(edges)
        return g

    @staticmethod
    def _spec(g: nx.DiGraph) -> Spec:
        """The (ops, edges) of a well-formed pruned genotype; a ``GenotypeError`` names what is wrong."""
        if not isinstance(g, nx.DiGraph):
            raise GenotypeError(f"NB-101 genotype must be a networkx DiGraph, got {type(g).__name__}")
        n = g.number_of_nodes()
        if set(g.nodes) != set(range(n)) or not 2 <= n <= MAX_VERTICES:
            raise GenotypeError(f"NB-101 genotype graph needs vertices 0..n-1 with 2 <= n <= {MAX_VERTICES}")
        if any(set(d) != {"op"} for _, d in g.nodes(data=True)):
            raise GenotypeError("NB-101 genotype graph: every vertex needs an 'op' attribute (and nothing else)")
        if any(d for *_, d in g.edges(data=True)):
            raise GenotypeError("NB-101 genotype graph: edges carry no attributes (ops sit on vertices)")
        edges = tuple(sorted(g.edges))
        if any(i >= j for i, j in edges):
            raise GenotypeError("NB-101 genotype graph: every edge must go from a lower to a higher vertex")
        spec = (tuple(g.nodes[v]["op"] for v in range(n)), edges)
        if _checked(spec) != spec:
            raise GenotypeError("NB-101 genotype graph is not pruned: every vertex must lie on an "
                                "input -> output path (from_str prunes for you)")
        return spec
