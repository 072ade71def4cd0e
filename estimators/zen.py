"""Zen-score (Lin et al., "Zen-NAS", ICCV 2021): expressivity of a Gaussian-initialised network.

On a copy of the network with Conv2d/Linear weights drawn from N(0, 1) (biases 0,
BatchNorm scale 1 and shift 0, running statistics reset) in train mode, feed Gaussian
noise ``x`` and a perturbed ``x + gamma * e``. ``Delta`` is the batch mean of
``sum |f(x) - f(x + gamma e)|`` over the feature map ``f`` taken *before the global
pooling*. BatchNorm would hide the scale of that difference, so the score adds back, for
every BatchNorm layer, ``log`` of the root mean (over channels) of its ``running_var``
after those two train-mode forward passes:
``zen = log(Delta) + sum_BN log(sqrt(mean_c running_var_c))``.

Why ``running_var`` and not the batch variance each BN normalised by (which this module
used before): in NAS-Bench-201 about 12.8% of cells have a live conv that reads an
all-zero node (e.g. node 1 is ``none`` from the input but ``1 -> 3`` is a conv). That BN
sees a constant, its batch variance is exactly 0 and ``log 0 = -inf`` made the whole cell
fail, although its output does depend on the input. ``running_var`` starts at 1 and moves
by the momentum towards the batch variance, so at PyTorch's default momentum (0.1) it is
never 0 for a constant layer (0.81 after two passes); it is
also what the Zen-NAS code and NASLib (hence the NAS-Bench-Suite-Zero ``zen`` column)
compute, and what DESIGN.md section 3 asks for. The alternative, leaving zero-variance BN
layers out of the sum, also fixes the failures (both: 11.7% -> 0.7% failed on 300 random
NB-201 cells). ``benchmarks/fisher_zen.md`` measures both. This one was kept because it
reproduces the published zen (Spearman 0.997 against the Suite-Zero ``zen`` column on 200
cells, against 0.954 for batch variances) and needs no special case for a variance of
exactly 0. Skipping scores a constant layer 0 but a nearly constant one very negative.
Batch variances do correlate better with accuracy (0.58 vs 0.50 on the 300 cells). That
comes from an implicit bonus per BN layer, a size signal, not from the Zen-score.
A BatchNorm without running statistics (``track_running_stats=False``) contributes its
batch variance instead.

A cell whose output does not depend on the input at all (about 2.2% of NB-201) still
fails, with that reason: ``Delta`` is 0 and no BN term can make ``log 0`` meaningful.

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
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from estimators import register
from estimators._torch_utils import SCORED_LAYERS, finite, forward_hooks, model_device
from estimators.base import Batch, Estimator, EstimatorError


def _gaussian_init(model: nn.Module, generator: torch.Generator) -> None:
    """Zen-NAS initialisation: N(0, 1) weights, zero biases, identity BatchNorm affine, and
    fresh running statistics (so the score does not depend on what the model saw before)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, SCORED_LAYERS):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, _BatchNorm):
                if module.affine:
                    module.weight.fill_(1.0)
                    module.bias.zero_()
                if module.track_running_stats:
                    module.reset_running_stats()


@dataclass
class ZenTerms:
    """The pieces of a Zen-score, kept apart so the BN statistic can be compared.

    ``batch_var`` / ``running_var``: per BatchNorm layer (module order), the channel mean of
    the batch variance it normalised the clean input by (its first call; ``None`` when the
    forward never calls it, e.g. an NB-201 edge that cannot reach the output), and of its
    ``running_var`` after both forward passes (``None`` without running statistics; an
    uncalled BN keeps the reset value 1, i.e. contributes 0).
    """

    delta: float
    batch_var: list[float | None]
    running_var: list[float | None]


def zen_terms(model: nn.Module, shape: Sequence[int], mixup_gamma: float, seed: int) -> ZenTerms:
    """Two train-mode forwards of a Gaussian-initialised copy of ``model`` (``model`` is untouched)."""
    net = copy.deepcopy(model).train()
    generator = torch.Generator().manual_seed(seed)
    _gaussian_init(net, generator)
    device = model_device(model)
    x = torch.randn(tuple(shape), generator=generator).to(device)
    noise = torch.randn(tuple(shape), generator=generator).to(device)

    feature_maps: list[torch.Tensor] = []
    batch_var: dict[nn.Module, float] = {}

    def grab_feature_map(_module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[2] * output.shape[3] > 1:
            feature_maps[:] = [output]

    def grab_batch_variance(module, inputs, _output) -> None:
        if module not in batch_var:
            t = inputs[0].transpose(0, 1).flatten(1)  # channels x (batch * positions)
            batch_var[module] = t.double().var(1, unbiased=False).mean().item()

    bns = [m for m in net.modules() if isinstance(m, _BatchNorm)]
    submodules = [m for m in net.modules() if m is not net]
    with torch.no_grad(), forward_hooks(submodules, grab_feature_map):
        with forward_hooks(bns, grab_batch_variance):
            net(x)
        if not feature_maps:
            raise EstimatorError("zen needs a spatial feature map before global pooling and the model has none")
        clean = feature_maps[0]
        net(x + mixup_gamma * noise)
        mixed = feature_maps[0]
    delta = (clean - mixed).abs().flatten(1).sum(1).mean().item()
    running_var = [bn.running_var.double().mean().item() if bn.running_var is not None else None for bn in bns]
    return ZenTerms(delta, [batch_var.get(bn) for bn in bns], running_var)


def _log_std(variance: float) -> float:
    """log sqrt(variance); -inf for 0 (left to ``finite`` to report)."""
    return 0.5 * math.log(variance) if variance > 0 else -math.inf


@register
class Zen(Estimator):
    name = "zen"
    description = ("Zen-score: log of the pre-pooling response to a small input perturbation "
                   "+ log std of each BN's running variance")
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
        terms = zen_terms(model, batches[0][0].shape, self.mixup_gamma, self.seed)
        if not terms.delta > 0:  # also catches NaN
            if math.isnan(terms.delta):
                raise EstimatorError("zen: the pre-pooling feature difference is not finite (nan)")
            raise EstimatorError("zen: the pre-pooling features do not respond to the input perturbation "
                                 "(the output does not depend on the input)")
        bn_term = sum(_log_std(rv if rv is not None else bv)
                      for rv, bv in zip(terms.running_var, terms.batch_var) if rv is not None or bv is not None)
        return finite(math.log(terms.delta) + bn_term, "zen score")
