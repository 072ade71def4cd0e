"""The DARTS space: a normal and a reduction cell stacked into the DARTS CIFAR evaluation network.

Genotype: one ``networkx.DiGraph`` holding both cells. Nodes are ``(cell, k)`` with cell
``"normal"`` or ``"reduce"`` and ``k`` in 0..5: 0 and 1 are the outputs of the two previous
cells, 2..5 are intermediate nodes, and the cell output is the concat of 2..5. Node ``k`` has
exactly two in-edges from two different earlier nodes, each with ``op`` and ``slot`` (0 or 1,
its position in the DARTS pair list, kept so that published genotypes round-trip verbatim).

Text forms: the compact ``to_str`` (``normal=sep3~0,sep3~1|...;reduce=...``, one ``|``-group
per intermediate node) and the DARTS ``Genotype(normal=[('sep_conv_3x3', 0), ...], ...)`` form
(``to_darts_str``); ``from_str`` reads both.
"""
from __future__ import annotations

import ast
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
from search_spaces.ops import DilConv, FactorizedReduce, ReLUConvBN, SepConv, avg_pool_3x3, drop_path, max_pool_3x3

#: Op name -> short name used by the compact text form.
SHORT: dict[str, str] = {
    "max_pool_3x3": "max3",
    "avg_pool_3x3": "avg3",
    "skip_connect": "skip",
    "sep_conv_3x3": "sep3",
    "sep_conv_5x5": "sep5",
    "dil_conv_3x3": "dil3",
    "dil_conv_5x5": "dil5",
}
OPS: tuple[str, ...] = tuple(SHORT)
_BY_NAME: dict[str, str] = {**{op: op for op in OPS}, **{short: op for op, short in SHORT.items()}}
CELLS: tuple[str, ...] = ("normal", "reduce")
#: The pseudo-op drawn on the edges from the intermediate nodes into the concatenated cell output.
CONCAT_OP = "concat"
INPUTS = 2
NODES = tuple(range(INPUTS, INPUTS + 4))  # intermediate nodes 2..5
CONCAT = list(NODES)
#: Intermediate-node relabelings tried by canonical_key (4! = 24).
_PERMUTATIONS = tuple(dict(zip(NODES, p)) for p in itertools.permutations(NODES))

CellSpec = list[list[tuple[str, int]]]  # per intermediate node: [(op, input), (op, input)] in slot order


def _make_op(op: str, channels: int, stride: int) -> nn.Module:
    if op == "max_pool_3x3":
        return max_pool_3x3(stride)
    if op == "avg_pool_3x3":
        return avg_pool_3x3(stride)
    if op == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    kernel = int(op[-1])
    if op.startswith("sep_conv"):
        return SepConv(channels, channels, kernel, stride, kernel // 2)
    return DilConv(channels, channels, kernel, stride, 2 * (kernel // 2), dilation=2)


class DartsCell(nn.Module):
    """One cell: preprocess both inputs to ``channels``, 4 nodes of 2 ops each, concat 2..5."""

    def __init__(self, spec: CellSpec, c_prev_prev: int, c_prev: int, channels: int,
                 reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(c_prev_prev, channels) if reduction_prev
                            else ReLUConvBN(c_prev_prev, channels, 1))
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1)
        self.inputs = [src for node in spec for _, src in node]
        self.ops = nn.ModuleList(
            _make_op(op, channels, 2 if reduction and src < INPUTS else 1)
            for node in spec for op, src in node
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k in range(len(NODES)):
            total = None
            for idx in (2 * k, 2 * k + 1):
                op = self.ops[idx]
                h = op(states[self.inputs[idx]])
                if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat(states[INPUTS:], dim=1)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier on the 8x8 features at 2/3 depth (DARTS CIFAR head).

    Feature maps smaller than the 5x5 pooling window (e.g. 16x16 inputs) are pooled to 2x2
    adaptively instead, and the final map is averaged, so any input size works.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3, count_include_pad=False)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu(x)
        x = self.pool(x) if min(x.shape[-2:]) >= 5 else nn.functional.adaptive_avg_pool2d(x, 2)
        x = self.features(x)
        return self.classifier(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


class DartsNetwork(nn.Module):
    """DARTS CIFAR evaluation network: stem (3C), ``layers`` cells, reductions at 1/3 and 2/3 depth.

    ``drop_path_prob`` may be changed between epochs; drop-path acts only in training mode.
    With ``auxiliary=True`` a training-mode forward stores the auxiliary logits in
    ``aux_logits`` (otherwise it is None).
    """

    def __init__(self, normal: CellSpec, reduce: CellSpec, num_classes: int, channels: int = 36,
                 layers: int = 20, auxiliary: bool = False, drop_path_prob: float = 0.0) -> None:
        super().__init__()
        if layers < 1 or channels < 2 or channels % 2:
            raise ValueError(f"DARTS network needs layers >= 1 and an even channels >= 2, got {layers}, {channels}")
        self.drop_path_prob = float(drop_path_prob)
        self.aux_logits: torch.Tensor | None = None
        stem_channels = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(3, stem_channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(stem_channels))
        reductions = {layers // 3, 2 * layers // 3}
        self.aux_index = 2 * layers // 3
        c_prev_prev, c_prev, c = stem_channels, stem_channels, channels
        cells, reduction_prev, c_aux = [], False, c_prev
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            cells.append(DartsCell(reduce if reduction else normal, c_prev_prev, c_prev, c,
                                   reduction, reduction_prev))
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, len(NODES) * c
            if i == self.aux_index:
                c_aux = c_prev
        self.cells = nn.ModuleList(cells)
        self.auxiliary_head = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.aux_logits = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                self.aux_logits = self.auxiliary_head(s1)
        return self.classifier(nn.functional.adaptive_avg_pool2d(s1, 1).flatten(1))


# ---- parsing -------------------------------------------------------------------------------------
def _op_name(name: Any, where: str) -> str:
    if name == "none":
        raise GenotypeError(f"DARTS genotype: {where}: 'none' is a supernet op, not a final choice; "
                            f"use one of {', '.join(OPS)}")
    if not isinstance(name, str) or name not in _BY_NAME:
        raise GenotypeError(f"DARTS genotype: {where}: unknown op {name!r}; use one of {', '.join(OPS)} "
                            f"(short: {', '.join(SHORT.values())})")
    return _BY_NAME[name]


def _check_spec(cell: str, pairs: list[Any]) -> CellSpec:
    """Validate a flat DARTS pair list for one cell and group it per node."""
    if not isinstance(pairs, (list, tuple)) or len(pairs) != 2 * len(NODES):
        got = len(pairs) if isinstance(pairs, (list, tuple)) else type(pairs).__name__
        raise GenotypeError(f"DARTS genotype: {cell} cell needs {2 * len(NODES)} (op, input) pairs "
                            f"(2 per node 2..5), got {got}")
    spec: CellSpec = []
    for k, node in enumerate(NODES):
        entries = []
        for slot in (0, 1):
            pair = pairs[2 * k + slot]
            where = f"{cell} cell, node {node}, input {slot + 1}"
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise GenotypeError(f"DARTS genotype: {where}: expected (op, input), got {pair!r}")
            op = _op_name(pair[0], where)
            src = pair[1]
            if not (isinstance(src, int) and not isinstance(src, bool) and 0 <= src < node):
                raise GenotypeError(f"DARTS genotype: {where}: input must be an earlier node 0..{node - 1}, got {src!r}")
            entries.append((op, src))
        if entries[0][1] == entries[1][1]:
            raise GenotypeError(f"DARTS genotype: {cell} cell, node {node} reads node {entries[0][1]} twice; "
                                "its two inputs must be different nodes")
        spec.append(entries)
    return spec


def _literal(node: ast.expr, field: str) -> Any:
    """A literal field value; ``range(a, b)`` (as DARTS search logs print concat) becomes a list."""
    try:
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
                and not node.keywords):
            return list(range(*(ast.literal_eval(a) for a in node.args)))
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise GenotypeError(f"DARTS genotype: field {field} is not a literal list") from None


def _parse_darts_text(s: str) -> dict[str, CellSpec]:
    try:
        tree = ast.parse(s.strip(), mode="eval").body
    except SyntaxError as exc:
        raise GenotypeError(f"DARTS genotype text is not valid Genotype(...) syntax: {exc.msg}") from None
    name = getattr(tree, "func", None)
    if not (isinstance(tree, ast.Call) and getattr(name, "id", getattr(name, "attr", None)) == "Genotype"):
        raise GenotypeError("DARTS genotype text must be Genotype(normal=[...], normal_concat=[...], "
                            "reduce=[...], reduce_concat=[...])")
    fields = ("normal", "normal_concat", "reduce", "reduce_concat")
    values = dict(zip(fields, tree.args))
    for kw in tree.keywords:
        if kw.arg not in fields or kw.arg in values:
            raise GenotypeError(f"DARTS genotype: unexpected or repeated field {kw.arg!r}; "
                                f"expected {', '.join(fields)}")
        values[kw.arg] = kw.value
    missing = [f for f in fields if f not in values]
    if missing or len(tree.args) > len(fields):
        problem = f"missing field(s) {', '.join(missing)}" if missing else f"{len(tree.args)} positional fields"
        raise GenotypeError(f"DARTS genotype: {problem}; expected exactly {', '.join(fields)}")
    for cell in CELLS:
        concat = _literal(values[f"{cell}_concat"], f"{cell}_concat")
        if list(concat) != CONCAT:
            raise GenotypeError(f"DARTS genotype: {cell}_concat must be {CONCAT} (all 4 intermediate "
                                f"nodes), got {concat!r}")
    return {cell: _check_spec(cell, _literal(values[cell], cell)) for cell in CELLS}


def _parse_compact(s: str) -> dict[str, CellSpec]:
    parts = dict(part.partition("=")[::2] for part in s.strip().split(";"))
    if sorted(parts) != sorted(CELLS) or s.count(";") != 1:
        raise GenotypeError("DARTS genotype must be 'normal=op~i,op~j|...;reduce=...' (4 nodes per cell) "
                            f"or the DARTS Genotype(...) text, got {s!r}")
    specs = {}
    for cell in CELLS:
        groups = parts[cell].split("|")
        if len(groups) != len(NODES):
            raise GenotypeError(f"DARTS genotype: {cell} cell needs {len(NODES)} nodes separated by '|', "
                                f"got {len(groups)}")
        pairs: list[Any] = []
        for node, group in zip(NODES, groups):
            entries = group.split(",")
            if len(entries) != 2:
                raise GenotypeError(f"DARTS genotype: {cell} cell, node {node} needs 2 inputs 'op~i,op~j', "
                                    f"got {group!r}")
            for entry in entries:
                op, sep, src = entry.strip().partition("~")
                if not sep or not src.isdigit():
                    raise GenotypeError(f"DARTS genotype: {cell} cell, node {node}: expected 'op~input', "
                                        f"got {entry!r}")
                pairs.append((op, int(src)))
        specs[cell] = _check_spec(cell, pairs)
    return specs


@functools.lru_cache(maxsize=16_384)
def _parse_any(s: str) -> dict[str, CellSpec]:
    """Either text form (compact, or DARTS ``Genotype(...)``) as per-cell pair lists.

    Remembered (parents are parsed again at every selection), so callers must not change the result.
    """
    if not isinstance(s, str):
        raise GenotypeError(f"DARTS genotype must be a string, got {type(s).__name__}")
    text = s.strip()
    return _parse_darts_text(text) if "Genotype" in text.partition("(")[0] else _parse_compact(text)


def _mutated(specs: dict[str, CellSpec], rng: random.Random) -> dict[str, CellSpec]:
    """A copy of ``specs`` with one op changed or (with probability 1/2 where another input exists) one input."""
    specs = {name: [list(node) for node in spec] for name, spec in specs.items()}
    cell, k, slot = rng.choice(CELLS), rng.randrange(len(NODES)), rng.randrange(2)
    node = NODES[k]
    op, src = specs[cell][k][slot]
    taken = {s for _, s in specs[cell][k]}
    others = [s for s in range(node) if s not in taken]
    if others and rng.random() < 0.5:
        specs[cell][k][slot] = (op, rng.choice(others))
    else:
        specs[cell][k][slot] = (rng.choice([o for o in OPS if o != op]), src)
    return specs


def _canonical_text(specs: dict[str, CellSpec]) -> str:
    return ";".join(f"{cell}={_canonical_cell(tuple(map(tuple, specs[cell])))}" for cell in CELLS)


def _cell_text(spec: CellSpec) -> str:
    return "|".join(",".join(f"{SHORT[op]}~{src}" for op, src in node) for node in spec)


@functools.lru_cache(maxsize=65_536)
def _canonical_cell(spec: tuple[tuple[tuple[str, int], ...], ...]) -> str:
    """Smallest text over all relabelings of nodes 2..5 that keep inputs earlier than their node.

    Remembered per cell: a mutation changes one of the two cells, so the other one's key is known.
    """
    best = None
    for perm in _PERMUTATIONS:
        relabel = {0: 0, 1: 1, **perm}
        if any(relabel[src] >= relabel[node] for node, entries in zip(NODES, spec) for _, src in entries):
            continue
        new: CellSpec = [[] for _ in NODES]
        for node, entries in zip(NODES, spec):
            new[relabel[node] - INPUTS] = sorted(((op, relabel[src]) for op, src in entries),
                                                 key=lambda e: (e[1], e[0]))
        text = _cell_text(new)
        best = text if best is None or text < best else best
    return best


@register
class DartsSpace(SearchSpace):
    """The DARTS CNN space (normal + reduction cell, 7 ops, 2 inputs per node)."""

    name = "darts"
    description = "DARTS: normal + reduction cell, 4 nodes x 2 inputs, 7 ops; 36ch/20-cell eval net"
    ops = OPS
    #: A much larger space than NB-201: a wider population and a proportionally larger sample.
    population_sample = (50, 10)
    network_knobs = ("channels", "layers", "drop_path", "aux_weight")

    def size(self) -> int:
        """Number of (normal, reduction) cell pairs, counting each node's two inputs as a set (~1.08e18)."""
        per_cell = math.prod(math.comb(node, 2) * len(OPS) ** 2 for node in NODES)
        return per_cell ** len(CELLS)

    def sample(self, rng: random.Random) -> nx.DiGraph:
        specs = {cell: [[(rng.choice(OPS), src) for src in rng.sample(range(node), 2)] for node in NODES]
                 for cell in CELLS}
        return self._graph(specs)

    def mutate(self, g: nx.DiGraph, rng: random.Random) -> nx.DiGraph:
        """Change one op, or (with probability 1/2 where another input exists) one input."""
        return self._graph(_mutated(self.specs(g), rng))

    def mutate_str(self, s: str, rng: random.Random) -> str:
        """``mutate`` on the text form without building graphs (the same draws, the same child)."""
        specs = _mutated(_parse_any(s), rng)
        return ";".join(f"{cell}={_cell_text(specs[cell])}" for cell in CELLS)

    def is_valid(self, g: nx.DiGraph) -> bool:
        try:
            self.specs(g)
        except GenotypeError:
            return False
        return True

    # ---- text forms ----------------------------------------------------------------------------
    def to_str(self, g: nx.DiGraph) -> str:
        specs = self.specs(g)
        return ";".join(f"{cell}={_cell_text(specs[cell])}" for cell in CELLS)

    def to_darts_str(self, g: nx.DiGraph) -> str:
        """The DARTS ``Genotype(...)`` text (pairs in slot order, so published strings round-trip)."""
        specs = self.specs(g)
        fields = [f"{cell}={[pair for node in specs[cell] for pair in node]!r}, {cell}_concat={CONCAT!r}"
                  for cell in CELLS]
        return f"Genotype({', '.join(fields)})"

    def from_str(self, s: str) -> nx.DiGraph:
        return self._graph(_parse_any(s))

    def canonical_key(self, g: nx.DiGraph) -> str:
        """Compact text of the smallest isomorphic relabeling of each cell.

        Invariant to the order of a node's two inputs and to renumbering intermediate nodes
        (all four are concatenated, so their order only permutes channels). The key is itself a
        valid compact genotype string.
        """
        return _canonical_text(self.specs(g))

    def str_key(self, s: str) -> str:
        return _canonical_text(_parse_any(s))

    # ---- networks ------------------------------------------------------------------------------
    def build(self, g: nx.DiGraph, num_classes: int, **options: Any) -> nn.Module:
        specs = self.specs(g)
        unknown = set(options) - {"channels", "layers", "auxiliary", "drop_path_prob"}
        if unknown:
            raise TypeError(f"unknown DARTS build options: {', '.join(sorted(unknown))}")
        return DartsNetwork(specs["normal"], specs["reduce"], num_classes, **options)

    def depth_units(self, model: nn.Module) -> list[nn.Module]:
        return list(model.cells)

    def proxy_options(self) -> dict[str, Any]:
        return {"channels": 16, "layers": 8}

    def training_recipe(self) -> dict[str, Any]:
        """The DARTS CIFAR-10 evaluation recipe (Liu et al. 2019): 600 epochs, cutout, auxiliary head, drop-path."""
        return {"name": "darts-600", "epochs": 600, "batch_size": 96, "lr": 0.025, "momentum": 0.9,
                "nesterov": False, "weight_decay": 3e-4, "channels": 36, "layers": 20, "cutout": 16,
                "drop_path": 0.2, "aux_weight": 0.4, "grad_clip": 5.0}

    def training_options(self, recipe: Mapping[str, Any], inference: bool = False) -> dict[str, Any]:
        """Channels and cells from the recipe; the auxiliary head and drop-path only while training."""
        return {"channels": recipe["channels"], "layers": recipe["layers"],
                "auxiliary": not inference and recipe["aux_weight"] > 0,
                "drop_path_prob": 0.0 if inference else recipe["drop_path"]}

    def sketches(self, g: nx.DiGraph) -> list[CellSketch]:
        """Each cell: inputs c_{k-2}, c_{k-1}, intermediate nodes 0..3, and the concat output c_{k}."""
        self.specs(g)
        names = {0: "c_{k-2}", 1: "c_{k-1}", 2: "0", 3: "1", 4: "2", 5: "3"}
        out = []
        for cell in CELLS:
            edges = [(names[u[1]], names[v[1]], d["op"])
                     for u, v, d in sorted(g.edges(data=True), key=lambda e: (e[1][1], e[2]["slot"])) if u[0] == cell]
            edges += [(names[k], "c_{k}", CONCAT_OP) for k in NODES]
            title = "normal cell" if cell == "normal" else "reduction cell"
            out.append(CellSketch(title, (*names.values(), "c_{k}"), tuple(edges), inputs=INPUTS))
        return out

    def describe(self, g: nx.DiGraph) -> str:
        specs = self.specs(g)
        lines = []
        for cell in CELLS:
            title = ("normal cell" if cell == "normal"
                     else "reduction cell (ops reading nodes 0 and 1 have stride 2)")
            lines.append(f"{title}: nodes 0, 1 = previous two cells; output = concat(2, 3, 4, 5)")
            for node, entries in zip(NODES, specs[cell]):
                lines.append(f"  node {node} = " + " + ".join(f"{op}(node {src})" for op, src in entries))
        return "\n".join(lines)

    # ---- graph <-> per-cell pair lists ---------------------------------------------------------
    def specs(self, g: nx.DiGraph) -> dict[str, CellSpec]:
        """Per cell, per intermediate node, its (op, input) pairs in slot order; validates ``g``."""
        if not isinstance(g, nx.DiGraph):
            raise GenotypeError(f"DARTS genotype must be a networkx DiGraph, got {type(g).__name__}")
        expected = {(cell, k) for cell in CELLS for k in range(INPUTS + len(NODES))}
        if set(g.nodes) != expected:
            raise GenotypeError("DARTS genotype graph must have nodes (cell, k) for cell in "
                                "normal/reduce and k in 0..5")
        if g.number_of_edges() != 2 * len(NODES) * len(CELLS):
            raise GenotypeError(f"DARTS genotype graph must have exactly {2 * len(NODES) * len(CELLS)} edges "
                                f"(2 into each intermediate node), got {g.number_of_edges()}")
        specs = {}
        for cell in CELLS:
            pairs: list[Any] = []
            for node in NODES:
                edges = sorted(g.in_edges((cell, node), data=True), key=lambda e: e[2].get("slot", -1))
                if [d.get("slot") for *_, d in edges] != [0, 1] or any(u[0] != cell for u, _, _ in edges):
                    raise GenotypeError(f"DARTS genotype graph: {cell} node {node} needs two in-edges "
                                        "from its own cell with slot 0 and slot 1")
                pairs.extend((d.get("op"), u[1]) for u, _, d in edges)
            specs[cell] = _check_spec(cell, pairs)
        return specs

    @staticmethod
    def _graph(specs: dict[str, CellSpec]) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from((cell, k) for cell in CELLS for k in range(INPUTS + len(NODES)))
        for cell in CELLS:
            for node, entries in zip(NODES, specs[cell]):
                for slot, (op, src) in enumerate(entries):
                    g.add_edge((cell, src), (cell, node), op=op, slot=slot)
        return g
