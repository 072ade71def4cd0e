"""Zen-score (Lin et al., "Zen-NAS", ICCV 2021): expressivity of a Gaussian-initialised network.

On a copy of the network with Conv2d/Linear weights drawn from N(0, 1) (biases 0,
BatchNorm scale 1 and shift 0) in train mode, feed Gaussian noise ``x`` and a perturbed
``x + gamma * e``. ``Delta`` is the batch mean of ``sum |f(x) - f(x + gamma e)|`` over the
feature map ``f`` taken *before the global pooling*. BatchNorm would hide the scale of
that difference, so the score adds back, for every BatchNorm layer, ``log`` of the root
mean (over channels) of the batch variance it normalised by:
``zen = log(Delta) + sum_BN log(sqrt(mean_c var_c))``.

The pre-pooling map is found generically, whether the network pools with a module or
functionally: forward hooks on every submodule keep the *last* 4-D output ``N x C x H x W``
with more than one spatial position. In a classifier that ends "features -> global
pooling -> linear" that is the feature map the pooling reads (NAS-Bench-201: the final
BN-ReLU; DARTS: the last cell). A network with no such output gets a clear error.
The batch only supplies the input shape; the noise and the Gaussian weights come from
the ``seed`` setting.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from estimators import register
from estimators._torch_utils import SCORED_LAYERS, finite, forward_hooks, model_device
from estimators.base import Batch, Estimator, EstimatorError


def _gaussian_init(model: nn.Module, generator: torch.Generator) -> None:
    """Zen-NAS initialisation: N(0, 1) weights, zero biases, identity BatchNorm affine."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, SCORED_LAYERS):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, _BatchNorm) and module.affine:
                module.weight.fill_(1.0)
                module.bias.zero_()


@register
class Zen(Estimator):
    name = "zen"
    description = "Zen-score: log of the pre-pooling response to a small input perturbation + BN variance terms"
    needs_data = False
    needs_labels = False
    num_batches = 1

    def __init__(self, mixup_gamma: float = 1e-2, seed: int = 0) -> None:
        self.mixup_gamma = float(mixup_gamma)
        self.seed = int(seed)

    def settings(self) -> dict[str, Any]:
        return {"mixup_gamma": self.mixup_gamma, "seed": self.seed}

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        if not batches:
            raise EstimatorError("zen needs one batch to know the input shape")
        net = copy.deepcopy(model).train()
        generator = torch.Generator().manual_seed(self.seed)
        _gaussian_init(net, generator)
        shape = batches[0][0].shape
        device = model_device(model)
        x = torch.randn(shape, generator=generator).to(device)
        noise = torch.randn(shape, generator=generator).to(device)

        feature_maps: list[torch.Tensor] = []
        bn_variances: list[torch.Tensor] = []

        def grab_feature_map(_module, _inputs, output) -> None:
            if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[2] * output.shape[3] > 1:
                feature_maps[:] = [output]

        def grab_bn_variance(_module, inputs, _output) -> None:
            t = inputs[0].transpose(0, 1).flatten(1)  # channels x (batch * positions)
            bn_variances.append(t.var(1, unbiased=False).mean())

        bns = [m for m in net.modules() if isinstance(m, _BatchNorm)]
        submodules = [m for m in net.modules() if m is not net]
        with torch.no_grad(), forward_hooks(submodules, grab_feature_map):
            with forward_hooks(bns, grab_bn_variance):
                net(x)
            if not feature_maps:
                raise EstimatorError("zen needs a spatial feature map before global pooling and the model has none")
            clean = feature_maps[0]
            net(x + self.mixup_gamma * noise)
            mixed = feature_maps[0]
        delta = (clean - mixed).abs().flatten(1).sum(1).mean().item()
        if delta <= 0:
            raise EstimatorError("zen: the pre-pooling features do not respond to the input perturbation")
        bn_term = sum(0.5 * math.log(v.item()) if v.item() > 0 else -math.inf for v in bn_variances)
        return finite(math.log(delta) + bn_term, "zen score")
