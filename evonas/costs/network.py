"""The network a cell's costs describe, and which of its modules are the cell's searchable ops.

Costs are about the network a user deploys: the space's evaluation network (the published
training recipe's channels and depth, no auxiliary head) for the dataset's classes and image
size, not the small proxy the estimators score. Shapes and counts come from a forward pass on
PyTorch's ``meta`` device: no memory, no arithmetic and no draw from any random generator.

The space says which modules are its searchable ops (``SearchSpace.op_modules``; by default the
members of each cell's ``nn.ModuleList`` / ``nn.ModuleDict``, NB-201's ``edges``, DARTS's ``ops``);
everything else (stem, reductions, preprocessing, head) is the fixed part every cell shares.
"""
from __future__ import annotations

from typing import Any

import networkx as nx
import torch
from torch import nn

from estimators._torch_utils import forward_hooks
from evonas.data.sources import PICKLED, SYNTHETIC_DEFAULTS
from evonas.errors import EvonasError
from evonas.recipes import default_recipe
from search_spaces.base import SearchSpace

#: (module, its first input) for every call of a searchable op during a forward pass.
OpCall = tuple[nn.Module, torch.Tensor]


def image_spec(dataset: str) -> tuple[int, int]:
    """(classes, image side) of a dataset, without loading it."""
    if dataset in PICKLED:
        return PICKLED[dataset].num_classes, PICKLED[dataset].resolution
    if dataset == "synthetic":
        return int(SYNTHETIC_DEFAULTS["num_classes"]), int(SYNTHETIC_DEFAULTS["resolution"])
    raise EvonasError(f"unknown dataset {dataset!r}; costs know {', '.join([*PICKLED, 'synthetic'])}")


def deployed_options(space: SearchSpace) -> dict[str, Any]:
    """Build options of the network that gets trained and deployed: the space's recipe, for inference."""
    return space.training_options(default_recipe(space).to_dict(), inference=True)


def meta_network(space: SearchSpace, graph: nx.DiGraph, num_classes: int, options: dict[str, Any]) -> nn.Module:
    """The network of ``graph`` with shapes only (eval mode, on the meta device)."""
    with torch.device("meta"):
        model = space.build(graph, num_classes, **options)
    return model.eval()


def traced_ops(space: SearchSpace, model: nn.Module, images: torch.Tensor, constants: bool = True) -> list[OpCall]:
    """Every call of a searchable op in one forward of ``images`` (dead ops are never called).

    ``constants=False`` leaves out the calls whose input does not depend on the images (an op on a
    node no op wrote reads zeros), which a backend compiling the whole network folds into constants.
    Dependence is autograd's: the images require grad, ``model``'s parameters are switched off.
    """
    calls: list[OpCall] = []
    if not constants:
        model.requires_grad_(False)
        images = images.detach().requires_grad_(True)
    grad = torch.no_grad() if constants else torch.enable_grad()
    with forward_hooks(space.op_modules(model), lambda m, inputs, _out: calls.append((m, inputs[0]))), grad:
        model(images)
    return calls if constants else [(m, x) for m, x in calls if x.requires_grad]
