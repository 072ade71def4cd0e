"""Fisher information of activations (Theis et al., 2018; used as a NAS proxy by Turner et
al., BlockSwap 2020, and Abdelfattah et al., 2021).

For every Conv2d/Linear output channel ``k`` with activation ``a`` and loss gradient
``dL/da``, ``Delta_k = 0.5 * mean_n (sum_{h,w} a * dL/da)^2`` estimates the loss change
from removing the channel.

The proxy follows the reference implementations (Abdelfattah et al.'s code, NASLib and
NAS-Bench-Suite-Zero, whose table ``benchmarks/nb201_reference_proxies_cifar10.csv`` is
our cross-check): each channel's ``Delta_k`` is broadcast over that channel's weights,
i.e. the per-channel value is expanded to the layer's weight shape, and everything is
summed. A channel therefore counts ``fan_in = weight[k].numel()`` times
(``C_in / groups * kh * kw`` for a conv, ``in_features`` for a linear layer):

    fisher = sum_layers fan_in(layer) * sum_k Delta_k

Why not the paper's plain per-channel sum: the published fisher-vs-accuracy figures
were computed with the broadcast, and it changes the ranking. On 200 Suite-Zero cells the
Spearman against the table's ``fisher`` column goes from 0.918 to 0.977, and against
NB-201 cifar10_test from 0.352 to 0.517 (the table's own column gives 0.526 on those cells);
see ``benchmarks/fisher_zen.md``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from estimators import register
from estimators._torch_utils import batch_for, finite, forward_hooks, preserved, scored_layers
from estimators.base import Batch, Estimator


def channel_fisher(act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``Delta_k`` per output channel (float64): 0.5 * mean over the batch of (sum_hw a * dL/da)^2."""
    per_sample = (act * grad).flatten(2).sum(2) if act.dim() > 2 else act * grad
    return per_sample.double().pow(2).mean(0).mul(0.5)


@register
class Fisher(Estimator):
    name = "fisher"
    description = ("sum over Conv2d/Linear output channels of 0.5 * mean_n (sum_hw a * dL/da)^2, "
                   "broadcast over each channel's weights (x fan-in), as the reference code does")

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        images, labels = batch_for(model, batches)
        calls: list[tuple[nn.Module, torch.Tensor]] = []
        with preserved(model), forward_hooks(scored_layers(model), lambda m, _i, out: calls.append((m, out))):
            loss = F.cross_entropy(model(images), labels)
            grads = torch.autograd.grad(loss, [out for _m, out in calls], allow_unused=True)
        total = torch.zeros((), dtype=torch.float64)
        for (layer, act), grad in zip(calls, grads):
            if grad is None:  # the loss does not reach this layer: it contributes 0, as in the reference
                continue
            # Expanding Delta_k to the weight shape and summing == Delta_k times the weights per channel.
            fan_in = layer.weight[0].numel()
            total += channel_fisher(act.detach(), grad).sum().cpu() * fan_in
        return finite(total, "fisher")
