"""Gradient norm (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", 2021)."""
from __future__ import annotations

import torch

from estimators import register
from estimators._torch_utils import LossGradientProxy


@register
class GradNorm(LossGradientProxy):
    name = "grad_norm"
    description = "sum over Conv2d/Linear layers of the L2 norm of dL/dW (cross-entropy, one batch)"

    def per_layer(self, weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return grad.norm()
