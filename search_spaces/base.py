"""The interface every search space offers over networkx graph genotypes.

A genotype is a small ``networkx.DiGraph``; the space knows how to sample, mutate,
serialise, canonicalise and build it. Evolution and executors only ever see this
interface and genotype *strings*, so a new space plugs in without touching them.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Mapping

import networkx as nx
from torch import nn

from search_spaces.benchmark import ARCH_COLUMNS, BenchmarkTable
from search_spaces.errors import BenchmarkError, GenotypeError

__all__ = ["GENERIC_RECIPE", "CellPlan", "CellSketch", "GenotypeError", "SearchSpace"]

#: The training recipe of a space that publishes none: plain SGD with Nesterov momentum and a
#: cosine schedule, a common CIFAR baseline (the keys are ``evonas.recipes.Recipe`` fields).
GENERIC_RECIPE: dict[str, Any] = {
    "name": "generic-sgd-cosine", "epochs": 100, "batch_size": 128, "lr": 0.05, "momentum": 0.9,
    "nesterov": True, "weight_decay": 5e-4,
}


@dataclass(frozen=True)
class CellSketch:
    """One cell as a picture shows it: nodes left to right, ops on edges (and optionally on nodes).

    ``edges`` are ``(source, target, op)``; an op ``"none"`` computes nothing. ``dead`` lists
    nodes whose result never reaches the output (drawn grey); ``node_ops`` labels nodes for spaces
    whose ops sit on vertices (NAS-Bench-101). ``inputs`` is how many leading nodes are inputs.
    """

    title: str
    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str, str], ...]
    inputs: int = 1
    node_ops: Mapping[str, str] = field(default_factory=dict)
    dead: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CellPlan:
    """What one cell builds and calls, for networks that repeat one cell with one module per (slot, op).

    ``built``: ``(slot, op)`` of every op module that exists (parameters count); ``calls``:
    ``(slot, op, source node, target node)`` of every op called in one forward, in call order (FLOPs
    and latency count). A slot is the module's key in the cell's ``ModuleDict``. With it the exact
    costs of every cell of a benchmark table are sums of per-(slot, op) terms, read once from the
    ``uniform_cells`` networks, instead of one network per cell.
    """

    built: tuple[tuple[str, str], ...]
    calls: tuple[tuple[str, str, str, str], ...]
    input: str
    output: str


class SearchSpace(ABC):
    """A space of cell graphs. Subclasses fill in the abstract methods."""

    name: str = ""
    description: str = ""
    ops: tuple[str, ...] = ()
    #: Dataset -> accuracy column of this space's benchmark table (empty: no known table).
    truth_columns: dict[str, str] = {}
    #: Aging-evolution (population, sample) when the user gives none.
    population_sample: tuple[int, int] = (25, 5)
    #: Recipe settings the space's network takes (``training_options`` turns them into build
    #: options); giving any other network knob to ``evonas train`` is an error, not ignored.
    network_knobs: tuple[str, ...] = ()

    # ---- size and sampling -------------------------------------------------------
    @abstractmethod
    def size(self) -> int | None:
        """Number of distinct genotypes (None when too large to matter)."""

    @abstractmethod
    def sample(self, rng: random.Random) -> nx.DiGraph:
        """A uniformly random valid genotype drawn from ``rng``."""

    @abstractmethod
    def mutate(self, g: nx.DiGraph, rng: random.Random) -> nx.DiGraph:
        """A valid child differing from ``g`` in exactly one choice (never equal to ``g``)."""

    @abstractmethod
    def is_valid(self, g: nx.DiGraph) -> bool:
        """Whether ``g`` is a well-formed genotype of this space."""

    # ---- text form ---------------------------------------------------------------
    @abstractmethod
    def to_str(self, g: nx.DiGraph) -> str:
        """The space's canonical text form; ``from_str(to_str(g))`` is ``g``."""

    @abstractmethod
    def from_str(self, s: str) -> nx.DiGraph:
        """Parse the text form; raise ``GenotypeError`` naming what is wrong."""

    @abstractmethod
    def canonical_key(self, g: nx.DiGraph) -> str:
        """Equal for genotypes that compute the same function up to isomorphism."""

    # ---- networks ----------------------------------------------------------------
    @abstractmethod
    def build(self, g: nx.DiGraph, num_classes: int, **options: Any) -> nn.Module:
        """The network for ``g`` (default PyTorch init, seeded by the caller)."""

    @abstractmethod
    def depth_units(self, model: nn.Module) -> list[nn.Module]:
        """Searchable cells and reduction blocks of ``model`` in forward order."""

    def proxy_options(self) -> dict[str, Any]:
        """Build options for scoring (a small proxy network); recorded in every run."""
        return {}

    # ---- training and deployment ---------------------------------------------------
    def training_recipe(self) -> dict[str, Any]:
        """The space's published training recipe as ``evonas.recipes.Recipe`` fields (generic SGD by default)."""
        return dict(GENERIC_RECIPE)

    def training_options(self, recipe: Mapping[str, Any], inference: bool = False) -> dict[str, Any]:
        """Build options of the trained network under ``recipe`` (its ``network_knobs``).

        ``inference``: the network as it is deployed after training (no training-only parts such as
        an auxiliary head or drop-path). Default: the space's own build defaults.
        """
        return {}

    def op_modules(self, model: nn.Module) -> list[nn.Module]:
        """The searchable op modules of ``model`` (costs time and count them; the rest is the fixed part).

        Default: members of every ``nn.ModuleList`` / ``nn.ModuleDict`` directly inside a depth unit.
        """
        ops: list[nn.Module] = []
        for unit in self.depth_units(model):
            for child in unit.children():
                if isinstance(child, nn.ModuleList):
                    ops.extend(child)
                elif isinstance(child, nn.ModuleDict):
                    ops.extend(child.values())
        return ops

    def cell_plan(self, g: nx.DiGraph) -> CellPlan | None:
        """For a network that repeats one cell: what the cell builds and calls (see ``CellPlan``). None:
        the space's networks are not built that way, and costs are computed network by network."""
        return None

    def uniform_cells(self) -> list[str]:
        """Genotypes, one per op, with that op in every slot (the references ``cell_plan`` costs come from)."""
        return []

    def sketches(self, g: nx.DiGraph) -> list[CellSketch]:
        """The cells of ``g`` as a picture shows them. Default: the genotype graph itself, nodes in
        topological order, ``op`` labels of edges and nodes where present."""
        nodes = [str(n) for n in nx.topological_sort(g)] if nx.is_directed_acyclic_graph(g) else [str(n) for n in g]
        edges = tuple((str(u), str(v), str(d.get("op", ""))) for u, v, d in g.edges(data=True))
        node_ops = {str(n): str(d["op"]) for n, d in g.nodes(data=True) if "op" in d}
        inputs = sum(1 for n in g if g.in_degree(n) == 0) or 1
        return [CellSketch(self.name or "cell", tuple(nodes), edges, inputs=inputs, node_ops=node_ops)]

    def describe(self, g: nx.DiGraph) -> str:
        """Human-readable multi-line view of a cell (defaults to its edges)."""
        lines = [f"{u} -> {v}: {d.get('op', '')}" for u, v, d in sorted(g.edges(data=True), key=str)]
        return "\n".join(lines)

    def mutate_str(self, s: str, rng: random.Random) -> str:
        """``mutate`` on the text form (spaces may skip the graphs, with the same draws and child)."""
        return self.to_str(self.mutate(self.from_str(s), rng))

    def str_key(self, s: str) -> str:
        """Canonical key straight from a genotype string."""
        return self.canonical_key(self.from_str(s))

    # ---- benchmark tables --------------------------------------------------------
    def benchmark(self, path: str | Path) -> BenchmarkTable:
        """A truth table of this space's cells (accuracies by genotype, exact or isomorphic)."""
        return BenchmarkTable.read(self, path)

    #: What a benchmark table's genotype column(s) are called (for the error when a table lacks them).
    genotype_columns: str = "arch (or genotype)"

    def genotype_of_row(self, row: Mapping[str, str | None]) -> str | None:
        """The genotype string of one benchmark-table row; None when the row has no genotype column.

        Default: the ``arch`` or ``genotype`` column. A space whose tables spread a cell over several
        columns (NB-101: ``matrix`` and ``ops``) overrides it and ``genotype_columns``.
        """
        return next((row[c] or "" for c in ARCH_COLUMNS if c in row), None)

    def truth_column(self, dataset: str) -> str:
        """The accuracy column of this space's benchmark table for ``dataset``."""
        if dataset not in self.truth_columns:
            known = ", ".join(self.truth_columns) or "no dataset (this space has no known benchmark table)"
            raise BenchmarkError(f"--truth tables of {self.name} have accuracies for {known}, not {dataset!r}")
        return self.truth_columns[dataset]

    def benchmark_order(self) -> list[str] | None:
        """Every cell in the benchmark's own index order, where the space has such a benchmark."""
        return None
