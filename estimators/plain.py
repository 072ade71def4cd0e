"""Plain first-order saliency ``w * dL/dw`` summed without absolute value (Mozer & Smolensky's
sensitivity, as listed among the zero-cost proxies of Abdelfattah et al., 2021)."""
from __future__ import annotations

import torch

from estimators import register
from estimators._torch_utils import LossGradientProxy


@register
class Plain(LossGradientProxy):
    name = "plain"
    description = "sum of w * dL/dw over Conv2d/Linear weights, signed (cross-entropy, one batch)"

    def per_layer(self, weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return (weight * grad).sum()
