"""A space that implements only the abstract ``SearchSpace`` methods: the minimum a plug-in writes.

Three layers in a chain, each one of four ops; the network is a tiny stem, the layers and a head.
Tests register it (``search_spaces.registered``) or expose it through an entry point, and check
that it goes everywhere a built-in space goes.
"""
from __future__ import annotations

import itertools
import random
from typing import Any

import networkx as nx
import torch
from torch import nn

from search_spaces import GenotypeError, SearchSpace

OPS = ("conv3", "conv1", "pool", "skip")
LAYERS = 3
WIDTH = 8


def _op(name: str) -> nn.Module:
    if name == "conv3":
        return nn.Sequential(nn.Conv2d(WIDTH, WIDTH, 3, padding=1, bias=False), nn.BatchNorm2d(WIDTH), nn.ReLU())
    if name == "conv1":
        return nn.Sequential(nn.Conv2d(WIDTH, WIDTH, 1, bias=False), nn.BatchNorm2d(WIDTH), nn.ReLU())
    if name == "pool":
        return nn.AvgPool2d(3, stride=1, padding=1)
    return nn.Identity()


class ChainNet(nn.Module):
    def __init__(self, ops: list[str], num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, WIDTH, 3, padding=1, bias=False), nn.BatchNorm2d(WIDTH))
        self.layers = nn.ModuleList(_op(name) for name in ops)
        self.head = nn.Linear(WIDTH, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x.mean((2, 3)))


class ToySpace(SearchSpace):
    """Chains of three ops (64 cells)."""

    name = "toy"
    description = "toy chain: 3 layers, 4 ops (test plug-in)"
    ops = OPS

    def size(self) -> int:
        return len(OPS) ** LAYERS

    def sample(self, rng: random.Random) -> nx.DiGraph:
        return self._graph([rng.choice(OPS) for _ in range(LAYERS)])

    def mutate(self, g: nx.DiGraph, rng: random.Random) -> nx.DiGraph:
        ops = self._ops(g)
        i = rng.randrange(LAYERS)
        ops[i] = rng.choice([op for op in OPS if op != ops[i]])
        return self._graph(ops)

    def is_valid(self, g: nx.DiGraph) -> bool:
        return (isinstance(g, nx.DiGraph) and set(g.edges) == {(i, i + 1) for i in range(LAYERS)}
                and set(g.nodes) == set(range(LAYERS + 1)) and all(d.get("op") in OPS for *_, d in g.edges(data=True)))

    def to_str(self, g: nx.DiGraph) -> str:
        return "-".join(self._ops(g))

    def from_str(self, s: str) -> nx.DiGraph:
        ops = s.strip().split("-")
        if len(ops) != LAYERS or any(op not in OPS for op in ops):
            raise GenotypeError(f"toy genotype is {LAYERS} of {', '.join(OPS)} joined by '-', not {s!r}")
        return self._graph(ops)

    def canonical_key(self, g: nx.DiGraph) -> str:
        return "-".join(op for op in self._ops(g) if op != "skip") or "identity"

    def build(self, g: nx.DiGraph, num_classes: int, **options: Any) -> nn.Module:
        if options:
            raise TypeError(f"toy takes no build options, got {sorted(options)}")
        return ChainNet(self._ops(g), num_classes)

    def depth_units(self, model: nn.Module) -> list[nn.Module]:
        return list(model.layers)

    def _ops(self, g: nx.DiGraph) -> list[str]:
        if not self.is_valid(g):
            raise GenotypeError("not a toy genotype: a chain 0 -> 1 -> 2 -> 3 with an 'op' on each edge")
        return [g.edges[i, i + 1]["op"] for i in range(LAYERS)]

    @staticmethod
    def _graph(ops: list[str]) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(range(LAYERS + 1))
        for i, op in enumerate(ops):
            g.add_edge(i, i + 1, op=op)
        return g


def all_cells() -> list[str]:
    return ["-".join(ops) for ops in itertools.product(OPS, repeat=LAYERS)]
