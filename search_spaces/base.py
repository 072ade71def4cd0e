"""The interface every search space offers over networkx graph genotypes.

A genotype is a small ``networkx.DiGraph``; the space knows how to sample, mutate,
serialise, canonicalise and build it. Evolution and executors only ever see this
interface and genotype *strings*, so a new space plugs in without touching them.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import networkx as nx
from torch import nn

from search_spaces.benchmark import BenchmarkTable
from search_spaces.errors import BenchmarkError, GenotypeError

__all__ = ["GenotypeError", "SearchSpace"]


class SearchSpace(ABC):
    """A space of cell graphs. Subclasses fill in the abstract methods."""

    name: str = ""
    description: str = ""
    ops: tuple[str, ...] = ()
    #: Dataset -> accuracy column of this space's benchmark table (empty: no known table).
    truth_columns: dict[str, str] = {}

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

    def truth_column(self, dataset: str) -> str:
        """The accuracy column of this space's benchmark table for ``dataset``."""
        if dataset not in self.truth_columns:
            known = ", ".join(self.truth_columns) or "no dataset (this space has no known benchmark table)"
            raise BenchmarkError(f"--truth tables of {self.name} have accuracies for {known}, not {dataset!r}")
        return self.truth_columns[dataset]

    def benchmark_order(self) -> list[str] | None:
        """Every cell in the benchmark's own index order, where the space has such a benchmark."""
        return None
