"""L2 norm of the initial weights (NAS-Bench-Suite-Zero's data-free magnitude proxy)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from estimators import register
from estimators._torch_utils import finite, scored_weights
from estimators.base import Batch, Estimator


@register
class L2Norm(Estimator):
    name = "l2_norm"
    description = "sum over Conv2d/Linear layers of the L2 norm of the weight tensor (no data)"
    needs_data = False
    needs_labels = False
    num_batches = 0

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        with torch.no_grad():
            return finite(sum(w.norm() for w in scored_weights(model)), "l2_norm")
