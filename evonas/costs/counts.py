"""Parameters and FLOPs of a network, each split into the searchable ops' share and the rest.

The conventions are the ``params`` and ``flops`` estimators' (NAS-Bench-201's parameter count,
in millions; NAS-Bench-Suite-Zero's operation count per image, in millions), so a constraint
means what those estimators report. The split gives the space's lower bound: no cell can cost
less than the fixed part, which is how a constraint that excludes every cell is caught at start.
"""
from __future__ import annotations

import torch
from torch import nn

from estimators._torch_utils import forward_hooks
from estimators.flops import COUNTERS
from search_spaces.base import SearchSpace


def _count_of(module: nn.Module):
    for types, count in COUNTERS:
        if isinstance(module, types):
            return count
    return None


def params_count(space: SearchSpace, model: nn.Module) -> tuple[int, int]:
    """(all parameters, those inside searchable ops), each tensor once."""
    total = {id(p): p.numel() for p in model.parameters()}
    in_ops = {id(p): p.numel() for op in space.op_modules(model) for p in op.parameters()}
    return sum(total.values()), sum(in_ops.values())


def params_split(space: SearchSpace, model: nn.Module) -> tuple[float, float]:
    """(all parameters, those inside searchable ops), in millions, each tensor once."""
    whole, ops = params_count(space, model)
    return whole / 1e6, ops / 1e6


def flops_split(space: SearchSpace, model: nn.Module, image_side: int) -> tuple[float, float]:
    """(all operations, those inside searchable ops) of one image, in millions."""
    whole, ops = flops_count(space, model, image_side)
    return whole / 1e6, ops / 1e6


def call_flops(module: nn.Module, x: torch.Tensor) -> int:
    """Operations of one call of ``module`` on ``x`` (batched; counted per image, as in ``flops_count``)."""
    total = [0]

    def count(counted: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        total[0] += _count_of(counted)(counted, inputs[0], output)

    with forward_hooks([m for m in module.modules() if _count_of(m) is not None], count), torch.no_grad():
        module(x)
    return total[0]


def flops_count(space: SearchSpace, model: nn.Module, image_side: int) -> tuple[int, int]:
    """(all operations, those inside searchable ops) of one image."""
    inside = {id(m) for op in space.op_modules(model) for m in op.modules()}
    totals = {"all": 0, "ops": 0}

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        n = _count_of(module)(module, inputs[0], output)
        totals["all"] += n
        if id(module) in inside:
            totals["ops"] += n

    counted = [m for m in model.modules() if _count_of(m) is not None]
    device = next(model.parameters()).device
    with forward_hooks(counted, count), torch.no_grad():
        model(torch.zeros(1, 3, image_side, image_side, device=device))
    return totals["all"], totals["ops"]
