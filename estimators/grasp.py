"""GraSP (Wang et al., 2020) as a NAS proxy: ``-theta * (H g)`` summed over the network.

``g`` is the cross-entropy gradient of the Conv2d/Linear weights and ``H g`` the
Hessian-gradient product, obtained by differentiating ``g_detached . g`` once more.
One forward pass serves both gradients (the reference code runs the same batch twice,
which gives the same numbers).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from estimators import register
from estimators._torch_utils import batch_for, finite, loss_weight_grads, preserved, scored_weights
from estimators.base import Batch, Estimator


@register
class Grasp(Estimator):
    name = "grasp"
    description = "GraSP: sum of -w * (H g) over Conv2d/Linear weights (Hessian-gradient product)"

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        images, labels = batch_for(model, batches)
        weights = scored_weights(model)
        with preserved(model):
            grads = loss_weight_grads(model, images, labels, weights, create_graph=True)
            live = [i for i, g in enumerate(grads) if g.requires_grad]
            if not live:
                return 0.0
            z = sum((grads[i].detach() * grads[i]).sum() for i in live)
            hg = torch.autograd.grad(z, [weights[i] for i in live], allow_unused=True)
        total = sum((-weights[i].detach() * h).sum() for i, h in zip(live, hg) if h is not None)
        return finite(total, "grasp")
