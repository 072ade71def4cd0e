"""ZiCo (Li et al., ICLR 2023): zero-shot proxy from gradient mean/std across batches.

For each Conv2d/Linear weight tensor, the cross-entropy gradients of several batches
give, per entry, the mean absolute gradient and the standard deviation across batches.
A layer contributes ``log(sum(mean|g| / std(g)))`` over the entries with non-zero std
(nothing if that sum is zero); the score sums the layers. Two batches, as the paper.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from estimators import register
from estimators._torch_utils import batch_for, finite, loss_weight_grads, preserved, scored_weights
from estimators.base import Batch, Estimator


@register
class Zico(Estimator):
    name = "zico"
    description = "ZiCo: sum over Conv2d/Linear layers of log(sum mean|g| / std(g)) across 2 batches"
    num_batches = 2

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        data = [batch_for(model, batches, i) for i in range(self.num_batches)]
        weights = scored_weights(model)
        with preserved(model):
            per_batch = [loss_weight_grads(model, images, labels, weights) for images, labels in data]
        total = 0.0
        for grads in zip(*per_batch):
            stacked = torch.stack([g.flatten() for g in grads]).double()
            std = stacked.std(0, unbiased=False)
            nonzero = std > 0
            ratio = (stacked.abs().mean(0)[nonzero] / std[nonzero]).sum().item()
            if ratio > 0:
                total += math.log(ratio)
        return finite(total, "zico")
