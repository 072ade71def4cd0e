"""SynFlow (Tanaka et al., 2020) as a NAS proxy (Abdelfattah et al., 2021).

Data-free "synaptic flow": on a copy of the network with every parameter replaced by its
absolute value, BatchNorm switched off (identity) and float64 arithmetic, feed an
all-ones input and let ``R`` be the sum of the outputs. The score is
``sum |theta * dR/dtheta|`` over the Conv2d/Linear weights. Float64 keeps the product
of many layer norms from overflowing; the caller's model is never touched.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from estimators import register
from estimators._torch_utils import finite, model_device, scored_weights
from estimators.base import Batch, Estimator, EstimatorError


def _without_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with every BatchNorm module replaced by an identity, in place."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _BatchNorm):
                setattr(parent, name, nn.Identity())
    return model


@register
class Synflow(Estimator):
    name = "synflow"
    description = "SynFlow: sum |w * dR/dw|, R = sum of outputs for |weights|, all-ones input, no BN, float64"
    needs_data = False
    needs_labels = False
    num_batches = 1

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        """Only the shape of the first batch is used (one all-ones image of that shape)."""
        if not batches:
            raise EstimatorError("synflow needs one batch to know the input shape")
        net = _without_batchnorm(copy.deepcopy(model)).double().eval()
        with torch.no_grad():
            for param in net.parameters():
                param.abs_()
        weights = scored_weights(net)
        ones = torch.ones(1, *batches[0][0].shape[1:], dtype=torch.float64, device=model_device(model))
        grads = torch.autograd.grad(net(ones).sum(), weights, allow_unused=True)
        total = sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads) if g is not None)
        return finite(total, "synflow")
