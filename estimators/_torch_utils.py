"""Mechanics the baseline estimators share: which weights count, batches, loss gradients,
input Jacobians, hooks, and leaving the model as it was found.

Every gradient here comes from ``torch.autograd.grad`` for exactly the tensors a score
reads, so no ``.grad`` buffer is filled (or needs zeroing) on the caller's model.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from estimators.base import Batch, Estimator, EstimatorError

#: The layers whose ``weight`` the weight-based proxies score (their papers' convention).
SCORED_LAYERS = (nn.Conv2d, nn.Linear)


def scored_layers(model: nn.Module) -> list[nn.Module]:
    """Every Conv2d / Linear module in module order (a shared module once)."""
    layers = [m for m in model.modules() if isinstance(m, SCORED_LAYERS)]
    if not layers:
        raise EstimatorError("the model has no Conv2d or Linear layer to score")
    return layers


def conv_linear_weights(module: nn.Module) -> list[nn.Parameter]:
    """The ``weight`` of every Conv2d / Linear inside ``module``, in module order, once each.

    No biases, no BatchNorm parameters; empty for a module without such layers (a cell of
    only pooling / skip ops, which calibration still counts as a depth unit).
    """
    seen: set[int] = set()
    weights = []
    for layer in module.modules():
        if isinstance(layer, SCORED_LAYERS) and id(layer.weight) not in seen:
            seen.add(id(layer.weight))
            weights.append(layer.weight)
    return weights


def scored_weights(model: nn.Module) -> list[nn.Parameter]:
    """``conv_linear_weights`` of a whole model, which must have at least one such layer."""
    weights = conv_linear_weights(model)
    if not weights:
        raise EstimatorError("the model has no Conv2d or Linear layer to score")
    return weights


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (CPU for a parameterless model)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def batch_for(model: nn.Module, batches: Sequence[Batch], index: int = 0) -> Batch:
    """Batch ``index`` on the model's device; a clear error when too few were given."""
    if len(batches) <= index:
        raise EstimatorError(f"needs {index + 1} batch(es) of (images, labels), got {len(batches)}")
    images, labels = batches[index]
    device = model_device(model)
    return images.to(device), (labels.to(device) if labels is not None else None)


@contextmanager
def preserved(model: nn.Module) -> Iterator[nn.Module]:
    """Restore the train/eval flags and every buffer (BatchNorm running statistics) on exit.

    Forward passes in train mode update running statistics; another estimator scoring
    the same model afterwards (zen reads them, eval-mode users depend on them) must see
    the model as it was built.
    """
    modes = {m: m.training for m in model.modules()}
    saved = [(buf, buf.detach().clone()) for buf in model.buffers()]
    try:
        yield model
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)
        for module, mode in modes.items():
            module.training = mode


def loss_weight_grads(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, weights: Sequence[nn.Parameter],
    *, create_graph: bool = False,
) -> list[torch.Tensor]:
    """dL/dw for cross-entropy on one batch; a weight the loss does not reach gets zeros.

    A NaN/inf gradient raises ``EstimatorError``: some reductions (sign, ``std > 0``
    masks) would otherwise turn it into a plausible-looking finite score.
    """
    loss = F.cross_entropy(model(images), labels)
    grads = torch.autograd.grad(loss, list(weights), allow_unused=True, create_graph=create_graph)
    grads = [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads)]
    if not all(bool(torch.isfinite(g).all()) for g in grads):
        raise EstimatorError(f"the loss gradient is not finite (loss {loss.item():.4g})")
    return grads


@contextmanager
def forward_hooks(modules: Sequence[nn.Module], hook: Callable) -> Iterator[None]:
    """Register ``hook`` as a forward hook on each module; always removed on exit."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def finite(value: float, what: str) -> float:
    """``value`` as a float, or an ``EstimatorError`` naming the quantity that went non-finite."""
    value = float(value)
    if not math.isfinite(value):
        raise EstimatorError(f"{what} is not finite ({value})")
    return value


class LossGradientProxy(Estimator):
    """A proxy that is a sum over Conv2d/Linear weights of some ``f(w, dL/dw)``.

    One cross-entropy forward/backward on the first batch, in the mode the caller set
    (train mode: BatchNorm uses batch statistics); subclasses only say what ``f`` is.
    """

    def per_layer(self, weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """The contribution of one weight tensor (``weight`` is detached)."""
        raise NotImplementedError

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        images, labels = batch_for(model, batches)
        weights = scored_weights(model)
        with preserved(model):
            grads = loss_weight_grads(model, images, labels, weights)
        return finite(sum(self.per_layer(w.detach(), g) for w, g in zip(weights, grads)), self.name)
