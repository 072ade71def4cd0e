"""NASWOT (Mellor et al., "Neural Architecture Search without Training", ICML 2021).

Each ReLU splits its input into active/inactive units: a binary code per image. Two
images whose codes agree on many units are hard to tell apart, so the score is
``log|det K|`` of the kernel ``K[i, j] = sum over ReLUs of the number of agreeing units``,
``K = c c^T + (1 - c)(1 - c)^T``. With ``s = 2c - 1`` (entries +-1) this is
``(D + s s^T) / 2`` for a ReLU of ``D`` units, one matrix product instead of two, exact
in float32 for ``D < 2^24``. Hooks sit on every ``nn.ReLU`` module (each call counts);
a functional ReLU is invisible to them.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from estimators import register
from estimators._torch_utils import batch_for, finite, forward_hooks, preserved
from estimators.base import Batch, Estimator, EstimatorError


@register
class Naswot(Estimator):
    name = "nwot"
    description = "NASWOT: log|det| of the Hamming-agreement kernel of ReLU binary codes over a batch"
    needs_labels = False

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        images, _ = batch_for(model, batches)
        relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
        if not relus:
            raise EstimatorError("nwot hooks nn.ReLU modules and the model has none")
        n = images.shape[0]
        kernel = torch.zeros(n, n, dtype=torch.float64, device=images.device)

        def accumulate(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output) -> None:
            signs = (inputs[0].flatten(1) > 0).float().mul_(2).sub_(1)
            kernel.add_((signs @ signs.T + signs.shape[1]).double().div_(2))

        with preserved(model), forward_hooks(relus, accumulate), torch.no_grad():
            model(images)
        return finite(torch.linalg.slogdet(kernel).logabsdet, "nwot log-determinant")
