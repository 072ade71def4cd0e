"""Fisher information of activations (Theis et al., 2018; used as a NAS proxy by Turner et
al., BlockSwap 2020, and Abdelfattah et al., 2021).

For every Conv2d/Linear output channel ``k`` with activation ``a`` and loss gradient
``dL/da``, ``Delta_k = 0.5 * mean_n (sum_{h,w} a * dL/da)^2`` estimates the loss change
from removing the channel; the proxy is the sum of ``Delta_k`` over all channels.
(NAS-Bench-Suite-Zero's table additionally repeats each channel's value once per weight
of that channel before summing; this follows the paper's per-channel sum.)
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from estimators import register
from estimators._torch_utils import batch_for, finite, forward_hooks, preserved, scored_layers
from estimators.base import Batch, Estimator


@register
class Fisher(Estimator):
    name = "fisher"
    description = "sum over Conv2d/Linear output channels of 0.5 * mean_n (sum_hw a * dL/da)^2"

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        images, labels = batch_for(model, batches)
        outputs: list[torch.Tensor] = []
        with preserved(model), forward_hooks(scored_layers(model), lambda _m, _i, out: outputs.append(out)):
            loss = F.cross_entropy(model(images), labels)
            grads = torch.autograd.grad(loss, outputs, allow_unused=True)
        total = torch.zeros((), dtype=torch.float64)
        for act, grad in zip(outputs, grads):
            if grad is None:
                continue
            per_channel = (act.detach() * grad).flatten(2).sum(2) if act.dim() > 2 else act.detach() * grad
            total += per_channel.double().pow(2).mean(0).mul(0.5).sum().cpu()
        return finite(total, "fisher")
