"""FLOPs as NAS-Bench-Suite-Zero reports them for NAS-Bench-201, in millions per image.

The convention (that table was produced with torchstat-style per-module counting):
a Conv2d or Linear costs one operation per multiply-add, plus one per output element
for a bias; a ReLU one per element; a BatchNorm one per element, two when it has an
affine scale and shift; a pooling layer one per element of each pooling window. Other
modules and functional operations (additions of cell edges, concatenations) count
nothing. Counting is by forward hooks, so every call of a shared module counts.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from estimators import register
from estimators._torch_utils import forward_hooks, model_device, preserved
from estimators.base import Batch, Estimator, EstimatorError


def _weighted(module: nn.Conv2d | nn.Linear, _inp: torch.Tensor, out: torch.Tensor) -> int:
    """Each output element costs one multiply-add per weight feeding it (+1 for a bias)."""
    return out[0].numel() * (module.weight[0].numel() + (1 if module.bias is not None else 0))


def _batchnorm(module: _BatchNorm, inp: torch.Tensor, _out: torch.Tensor) -> int:
    return inp[0].numel() * (2 if module.affine else 1)


def _elementwise(_module: nn.Module, inp: torch.Tensor, _out: torch.Tensor) -> int:
    return inp[0].numel()


def _pool(module: nn.AvgPool2d | nn.MaxPool2d, _inp: torch.Tensor, out: torch.Tensor) -> int:
    k = module.kernel_size
    area = k * k if isinstance(k, int) else k[0] * k[1]
    return out[0].numel() * area


#: Per-module operation counts for one image; ``inp``/``out`` are the batched tensors.
COUNTERS: tuple[tuple[tuple[type, ...], Callable[..., int]], ...] = (
    ((nn.Conv2d, nn.Linear), _weighted),
    ((_BatchNorm,), _batchnorm),
    ((nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU), _elementwise),
    ((nn.AvgPool2d, nn.MaxPool2d), _pool),
    ((nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d), _elementwise),
)


def _counter(module: nn.Module) -> Callable[..., int] | None:
    for types, count in COUNTERS:
        if isinstance(module, types):
            return count
    return None


@register
class Flops(Estimator):
    name = "flops"
    description = "operations per image in millions (multiply-adds + BN/ReLU/pooling, NAS-Bench-Suite-Zero convention)"
    needs_data = False
    needs_labels = False
    num_batches = 1

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        """One eval-mode forward of a single zero image shaped like the first batch's images."""
        if not batches:
            raise EstimatorError("flops needs one batch to know the input shape")
        total = 0

        def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            nonlocal total
            total += _counter(module)(module, inputs[0], output)

        counted = [m for m in model.modules() if _counter(m) is not None]
        with preserved(model), forward_hooks(counted, count), torch.no_grad():
            model.eval()
            model(torch.zeros(1, *batches[0][0].shape[1:], device=model_device(model)))
        return total / 1e6
