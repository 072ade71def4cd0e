"""Trace norm of the neural tangent kernel, in the minibatch form of NASI (Shu et al., ICLR 2022).

NASI bounds training speed by the NTK trace norm and estimates it, without computing the
kernel, by the squared norm of the loss gradient on a minibatch: ``sum_w (dL/dw)^2``.
Here ``w`` runs over the Conv2d/Linear weights, the same weights SweetNTK restricts to
its gradient interval, so the two are directly comparable.
"""
from __future__ import annotations

import torch

from estimators import register
from estimators._torch_utils import LossGradientProxy


@register
class NtkTrace(LossGradientProxy):
    name = "ntk"
    description = "NTK trace norm, NASI minibatch form: sum of (dL/dw)^2 over Conv2d/Linear weights"

    def per_layer(self, weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return grad.pow(2).sum()
