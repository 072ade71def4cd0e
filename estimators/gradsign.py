"""GradSign (Zhang & Jia, ICLR 2022): agreement of per-sample gradient signs.

For every Conv2d/Linear weight, the signs of the per-sample cross-entropy gradients are
summed over the batch; the score is ``sum_w |sum_i sign(dl_i/dw)|``. Weights whose
samples pull the same way indicate a smooth, dense loss landscape near initialisation.
Per-sample gradients come from one forward/backward per image (batch of one), as in the
paper, so BatchNorm uses that image's statistics.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from estimators import register
from estimators._torch_utils import batch_for, finite, loss_weight_grads, preserved, scored_weights
from estimators.base import Batch, Estimator


@register
class GradSign(Estimator):
    name = "gradsign"
    description = "GradSign: sum over Conv2d/Linear weights of |sum over samples of sign(per-sample gradient)|"

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        images, labels = batch_for(model, batches)
        weights = scored_weights(model)
        sign_sums = [torch.zeros_like(w) for w in weights]
        with preserved(model):
            for i in range(images.shape[0]):
                grads = loss_weight_grads(model, images[i : i + 1], labels[i : i + 1], weights)
                for acc, g in zip(sign_sums, grads):
                    acc.add_(g.sign())
        return finite(sum(s.abs().sum() for s in sign_sums), "gradsign")
