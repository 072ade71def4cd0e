"""One forward pass that several estimators read: the loss gradients of the Conv2d/Linear weights
(the Sweetimator family) and the input Jacobian (jacov, epe_nas) of one network on one batch.

Inside ``shared_pass(reads)`` the first estimator to ask runs one forward and then a backward
pass for each quantity in ``reads``; the others reuse them. A composite such as
``sweet_snip+sweet_ntk+jacov`` so pays for one network build and one forward instead of one per
part. Each reader gets the tensors it would compute alone (``tests/test_composite.py`` checks
the scores), and a failure of one quantity (a non-finite loss) fails only its readers.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from estimators._torch_utils import model_device, scored_weights
from estimators.base import Batch, EstimatorError

#: ``weight_gradients``: dL/dw of the cross-entropy loss for every Conv2d/Linear weight.
WEIGHT_GRADIENTS = "weight_gradients"
#: ``input_jacobian``: per-sample d(sum of logits)/d(input), and the logits.
INPUT_JACOBIAN = "input_jacobian"
READS = frozenset({WEIGHT_GRADIENTS, INPUT_JACOBIAN})


@contextmanager
def _scoring_pass(model: nn.Module, weights: Sequence[nn.Parameter], skip_unread: bool) -> Iterator[None]:
    """Train mode and empty ``.grad`` fields for one backward pass; everything restored afterwards.

    With ``skip_unread`` only ``weights`` require grad, so autograd builds no gradient
    buffers (and runs no gradient kernels) for biases and BatchNorm parameters, which these
    estimators never read.
    """
    params = list(model.parameters())
    saved = [(p.requires_grad, p.grad) for p in params]
    wanted = {id(w) for w in weights}
    was_training = model.training
    try:
        model.train()
        for p in params:
            p.grad = None
            if skip_unread:
                p.requires_grad_(id(p) in wanted)
        yield
    finally:
        for p, (flag, grad) in zip(params, saved):
            p.requires_grad_(flag)
            p.grad = grad
        model.train(was_training)


def _on_device(batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    images, labels = batch
    return images.to(device, non_blocking=True), (None if labels is None else labels.to(device, non_blocking=True))


def _loss_gradients(logits: torch.Tensor, labels: torch.Tensor, weights: Sequence[nn.Parameter]) -> list[torch.Tensor]:
    loss = F.cross_entropy(logits, labels)
    if not math.isfinite(loss.item()):
        raise EstimatorError(f"non-finite cross-entropy loss ({loss.item()})")
    # .backward() rather than torch.autograd.grad: it measured slightly faster on CPU
    loss.backward()
    return [torch.zeros_like(w) if w.grad is None else w.grad for w in weights]


def _jacobian(logits: torch.Tensor, x: torch.Tensor, retain_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    (grad,) = torch.autograd.grad(logits.sum(), x, allow_unused=True, retain_graph=retain_graph)
    if grad is None:  # e.g. an NB-201 cell whose every path to the output is `none`
        raise EstimatorError("the output does not depend on the input, so the input Jacobian is zero")
    if not torch.isfinite(grad).all():
        raise EstimatorError("the input Jacobian is not finite")
    return grad.flatten(1), logits.detach()


def weight_gradients(
    model: nn.Module, batch: Batch, *, skip_unread: bool = True
) -> tuple[list[nn.Parameter], list[torch.Tensor]]:
    """Conv2d/Linear weights and dL/dw for one cross-entropy backward pass in train mode.

    The model is left as it was (mode, ``requires_grad`` flags, ``.grad`` fields; BatchNorm
    running statistics do move). A weight the loss does not reach gets an all-zero gradient,
    its true value. ``skip_unread=False`` computes every parameter's gradient, as a plain
    loop would; it exists to prove the shortcut leaves the score unchanged.
    """
    weights = scored_weights(model)
    images, labels = _on_device(batch, weights[0].device)
    with _scoring_pass(model, weights, skip_unread):
        return weights, _loss_gradients(model(images), labels, weights)


def input_jacobian(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample d(sum of logits)/d(input), flattened to N x (C*H*W), and the logits (model's own mode)."""
    x = _on_device(batch, model_device(model))[0].detach().clone().requires_grad_(True)
    return _jacobian(model(x), x)


def _both(model: nn.Module, batch: Batch) -> dict[str, Any]:
    """One train-mode forward, then the input Jacobian and the weight gradients from it."""
    weights = scored_weights(model)
    images, labels = _on_device(batch, weights[0].device)
    with _scoring_pass(model, weights, skip_unread=True):
        x = images.detach().clone().requires_grad_(True)
        logits = model(x)
        return {INPUT_JACOBIAN: _captured(lambda: _jacobian(logits, x, retain_graph=True)),
                WEIGHT_GRADIENTS: _captured(lambda: (weights, _loss_gradients(logits, labels, weights)))}


def _captured(compute: Callable[[], Any]) -> Any:
    """The value, or the ``EstimatorError`` that computing it raised (re-raised to its readers)."""
    try:
        return compute()
    except EstimatorError as exc:
        return exc


@dataclass
class _Memo:
    """What the shared pass computed, for the last (model, images) seen."""

    reads: frozenset[str]
    source: tuple[Any, Any] = (None, None)  # (model, images): holding them keeps their ids unique
    results: dict[str, Any] = field(default_factory=dict)


_ACTIVE: ContextVar[_Memo | None] = ContextVar("estimators_shared_pass", default=None)


@contextmanager
def shared_pass(reads: Iterable[str]) -> Iterator[None]:
    """Within: ``reads`` (any of ``READS``) of one model and batch are computed once and shared."""
    reads = frozenset(reads)
    if not reads <= READS:
        raise ValueError(f"unknown shared-pass reads {sorted(reads - READS)}; choose from {sorted(READS)}")
    token = _ACTIVE.set(_Memo(reads))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def read(model: nn.Module, batch: Batch, what: str) -> Any:
    """``what`` (``WEIGHT_GRADIENTS`` or ``INPUT_JACOBIAN``) for ``model`` on ``batch``: from the
    shared pass when inside one that lists it, else computed alone."""
    alone = {WEIGHT_GRADIENTS: weight_gradients, INPUT_JACOBIAN: input_jacobian}[what]
    memo = _ACTIVE.get()
    if memo is None or what not in memo.reads:
        return alone(model, batch)
    if memo.source[0] is not model or memo.source[1] is not batch[0]:
        memo.source = (model, batch[0])
        memo.results = _both(model, batch) if memo.reads == READS else {what: _captured(lambda: alone(model, batch))}
    value = memo.results[what]
    if isinstance(value, EstimatorError):
        raise EstimatorError(str(value))
    return value
