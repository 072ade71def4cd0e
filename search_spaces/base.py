"""The interface every search space offers over networkx graph genotypes.

A genotype is a small ``networkx.DiGraph``; the space knows how to sample, mutate,
serialise, canonicalise and build it. Evolution and executors only ever see this
interface and genotype *strings*, so a new space plugs in without touching them.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any

import networkx as nx
from torch import nn


class GenotypeError(ValueError):
    """A genotype string or graph that does not describe a cell of the space."""


class SearchSpace(ABC):
    """A space of cell graphs. Subclasses fill in the abstract methods."""

    name: str = ""
    description: str = ""
    ops: tuple[str, ...] = ()

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

    def str_key(self, s: str) -> str:
        """Canonical key straight from a genotype string."""
        return self.canonical_key(self.from_str(s))
