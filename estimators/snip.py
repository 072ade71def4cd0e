"""SNIP connection sensitivity (Lee et al., 2019) summed over the network, as a NAS proxy.

The sensitivity of weight ``w`` is ``|dL/dc|`` for a multiplicative mask ``c = 1``,
which equals ``|w * dL/dw|``; the proxy is its sum over Conv2d/Linear weights.
"""
from __future__ import annotations

import torch

from estimators import register
from estimators._torch_utils import LossGradientProxy


@register
class Snip(LossGradientProxy):
    name = "snip"
    description = "sum of |w * dL/dw| over Conv2d/Linear weights (cross-entropy, one batch)"

    def per_layer(self, weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return (weight * grad).abs().sum()
