"""Parameter count: the oldest size proxy, in millions as NAS-Bench-201 reports it."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from estimators import register
from estimators.base import Batch, Estimator


@register
class Params(Estimator):
    name = "params"
    description = "number of parameters (every tensor once), in millions as NAS-Bench-201 reports them"
    needs_data = False
    needs_labels = False
    num_batches = 0

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        """Every parameter tensor counted once (shared tensors once), all modules included."""
        unique = {id(p): p.numel() for p in model.parameters()}
        return sum(unique.values()) / 1e6
