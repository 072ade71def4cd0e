"""The NAS-Bench-Macro space (Su et al., CVPR 2021): 8 searchable layers of a MobileNetV2-style network.

Each layer is ``0`` identity, ``1`` inverted residual (kernel 3, expansion 3) or ``2`` inverted
residual (kernel 5, expansion 6): 3^8 = 6,561 networks, every one trained on CIFAR-10 by the
benchmark. The genotype is a networkx path graph of the 8 layers (node attribute ``op``); its text
form is the benchmark's own, 8 digits such as ``12012012``.

The network: stem 3x3 conv to 32 channels + BN + ReLU; stages of 2, 3 and 3 layers whose first
layer has stride 2 and doubles the channels (64, 128, 256) -- an identity there becomes a 1x1
conv + BN; head 1x1 conv to 1280 + BN + ReLU, global average pool, linear. Only the public
``search_spaces`` API is used: this is what a third-party space needs, and all it needs.
"""
from __future__ import annotations

import random
from typing import Any

import networkx as nx
from torch import Tensor, nn

from search_spaces import CellSketch, GenotypeError, SearchSpace

#: Layer choices, by digit.
OPS: tuple[str, ...] = ("identity", "ir_k3_e3", "ir_k5_e6")
#: (kernel, expansion) of the inverted-residual choices.
INVERTED_RESIDUALS: dict[str, tuple[int, int]] = {"ir_k3_e3": (3, 3), "ir_k5_e6": (5, 6)}
STAGES: tuple[int, ...] = (2, 3, 3)
LAYERS = sum(STAGES)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
#: Index of the first layer of each stage (stride 2, channels doubled).
STAGE_STARTS = frozenset(sum(STAGES[:i]) for i in range(len(STAGES)))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand + BN + ReLU, depthwise kxk + BN + ReLU, 1x1 project + BN;
    the input is added back when the shapes match."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, hidden, kernel, stride=stride, padding=kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return out + x if self.shortcut else out


def _layer(op: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    if op in INVERTED_RESIDUALS:
        return InvertedResidual(c_in, c_out, stride, *INVERTED_RESIDUALS[op])
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    # An identity cannot change the shape: at a stage's start it is a strided 1x1 conv + BN.
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


class NBMacroNetwork(nn.Module):
    """Stem, the 8 searchable layers (``layers``, in forward order), head and classifier."""

    def __init__(self, ops: tuple[str, ...], num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, STEM_CHANNELS, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU())
        layers, c = [], STEM_CHANNELS
        for i, op in enumerate(ops):
            stride, c_out = (2, 2 * c) if i in STAGE_STARTS else (1, c)
            layers.append(_layer(op, c, c_out, stride))
            c = c_out
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.Conv2d(c, HEAD_CHANNELS, 1, bias=False), nn.BatchNorm2d(HEAD_CHANNELS),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.classifier(self.head(x))


def _digits(s: object) -> str:
    """The checked text form; a one-line ``GenotypeError`` says what is wrong."""
    if not isinstance(s, str):
        raise GenotypeError(f"NAS-Bench-Macro genotype must be a string of {LAYERS} digits, got {type(s).__name__}")
    text = s.strip()
    if len(text) != LAYERS:
        raise GenotypeError(f"NAS-Bench-Macro genotype needs {LAYERS} digits (one per layer), "
                            f"got {len(text)} in {s!r}")
    bad = next((c for c in text if c not in "012"), None)
    if bad is not None:
        raise GenotypeError(f"NAS-Bench-Macro genotype {s!r}: layer {text.index(bad) + 1} is {bad!r}; "
                            f"each digit is 0 ({OPS[0]}), 1 ({OPS[1]}) or 2 ({OPS[2]})")
    return text


class NBMacroSpace(SearchSpace):
    """NAS-Bench-Macro: 6,561 genotypes, 3,969 distinct networks (CIFAR-10 truth for all of them)."""

    name = "nbmacro"
    description = "NAS-Bench-Macro: 8 MobileNetV2-style layers, each identity / IR k3e3 / IR k5e6 (plug-in)"
    ops = OPS
    truth_columns = {"cifar10": "test_accuracy"}

    def size(self) -> int:
        return len(OPS) ** LAYERS

    def sample(self, rng: random.Random) -> nx.DiGraph:
        return self._graph(tuple(rng.choice(OPS) for _ in range(LAYERS)))

    def mutate(self, g: nx.DiGraph, rng: random.Random) -> nx.DiGraph:
        ops = list(self._ops(g))
        layer = rng.randrange(LAYERS)
        ops[layer] = rng.choice([op for op in OPS if op != ops[layer]])
        return self._graph(tuple(ops))

    def is_valid(self, g: nx.DiGraph) -> bool:
        return (isinstance(g, nx.DiGraph) and set(g.nodes) == set(range(LAYERS))
                and set(g.edges) == {(i, i + 1) for i in range(LAYERS - 1)}
                and all(g.nodes[i].get("op") in OPS for i in range(LAYERS)))

    def to_str(self, g: nx.DiGraph) -> str:
        return "".join(str(OPS.index(op)) for op in self._ops(g))

    def from_str(self, s: str) -> nx.DiGraph:
        return self._graph(tuple(OPS[int(c)] for c in _digits(s)))

    def canonical_key(self, g: nx.DiGraph) -> str:
        """The genotype with each stage's stride-1 identities moved to the stage's end.

        A stride-1 identity computes nothing, so where it sits after a stage's first layer does not
        change the network's function (``22212202`` is ``22212220``). The benchmark trained one
        network per key and gives every genotype of a key the same row: 3,969 distinct networks.
        """
        digits, start = self.to_str(g), 0
        key = []
        for length in STAGES:
            stage = digits[start:start + length]
            rest = stage[1:].replace("0", "")
            key.append(stage[0] + rest + "0" * (length - 1 - len(rest)))
            start += length
        return "".join(key)

    def build(self, g: nx.DiGraph, num_classes: int, **options: Any) -> nn.Module:
        if options:
            raise TypeError(f"the NAS-Bench-Macro network takes no build options, got {', '.join(sorted(options))}")
        return NBMacroNetwork(self._ops(g), num_classes)

    def depth_units(self, model: nn.Module) -> list[nn.Module]:
        return list(model.layers)

    def op_modules(self, model: nn.Module) -> list[nn.Module]:
        """Each searchable layer is one op (the stem and head are the fixed part)."""
        return self.depth_units(model)

    def training_recipe(self) -> dict[str, Any]:
        """The benchmark's own training: SGD momentum 0.9, lr 0.1 cosine, wd 5e-4, 50 epochs, batch 256."""
        return {"name": "nbmacro-50", "epochs": 50, "batch_size": 256, "lr": 0.1, "momentum": 0.9,
                "nesterov": False, "weight_decay": 5e-4}

    def describe(self, g: nx.DiGraph) -> str:
        """One line per layer: its stage, stride, channels and choice."""
        lines, c, stage = [], STEM_CHANNELS, 0
        for i, op in enumerate(self._ops(g)):
            stride, c_out = (2, 2 * c) if i in STAGE_STARTS else (1, c)
            stage += i in STAGE_STARTS
            shown = "1x1 conv + BN (identity changing the shape)" if op == "identity" and stride == 2 else op
            lines.append(f"layer {i + 1} (stage {stage}, stride {stride}, {c}->{c_out}): {shown}")
            c = c_out
        return "\n".join(lines)

    def sketches(self, g: nx.DiGraph) -> list[CellSketch]:
        """The chain in -> layers 1..8 -> out, each layer labelled with its choice (numbered as in
        ``describe``; an identity at a stage's start is drawn as the 1x1 conv it is)."""
        layers = [str(i + 1) for i in range(LAYERS)]
        nodes = ("in", *layers, "out")
        labels = {name: "conv1x1" if op == "identity" and i in STAGE_STARTS else op
                  for i, (name, op) in enumerate(zip(layers, self._ops(g)))}
        starts = ", ".join(str(i + 1) for i in sorted(STAGE_STARTS))
        return [CellSketch(f"layers (stride 2 at {starts})", nodes,
                           tuple((u, v, "") for u, v in zip(nodes, nodes[1:])), node_ops=labels)]

    @staticmethod
    def _graph(ops: tuple[str, ...]) -> nx.DiGraph:
        g = nx.path_graph(LAYERS, create_using=nx.DiGraph)
        for i, op in enumerate(ops):
            g.nodes[i]["op"] = op
        return g

    def _ops(self, g: nx.DiGraph) -> tuple[str, ...]:
        if not self.is_valid(g):
            raise GenotypeError(f"not a NAS-Bench-Macro genotype: need a path DiGraph 0 -> ... -> {LAYERS - 1} "
                                f"whose nodes each have an 'op' in {', '.join(OPS)}")
        return tuple(g.nodes[i]["op"] for i in range(LAYERS))
