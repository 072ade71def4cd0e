"""The Estimator interface and its result type.

An estimator sees only an ``nn.Module``, a list of ``(images, labels)`` batches and,
for calibration-aware estimators, the model's depth-unit modules. It never imports
from ``evonas`` or ``search_spaces``.

Running out of (GPU) memory says nothing about the network, so ``evaluate`` does not turn it
into a failed score: it frees what it can and tries once more at half the batch (the result
records ``oom_retry`` and the ``batch_size`` used); a second out-of-memory is raised, for the
executor's own retry of a worker fault.
"""
from __future__ import annotations

import gc
import math
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]


class EstimatorError(RuntimeError):
    """An estimator could not produce a finite score (the reason is the message)."""


@dataclass
class EstimatorResult:
    """Outcome of scoring one model; ``status`` is ``"ok"`` or ``"failed"``."""

    score: float | None
    seconds: float
    status: str = "ok"
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_out_of_memory(exc: BaseException) -> bool:
    """A torch out-of-memory error (CUDA or other devices), or a RuntimeError saying so."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def halved(batches: Sequence[Batch]) -> list[Batch] | None:
    """The first half of every batch; None when a batch has one image and cannot shrink."""
    if not batches or any(len(images) < 2 for images, _ in batches):
        return None
    return [(images[: len(images) // 2], None if labels is None else labels[: len(images) // 2])
            for images, labels in batches]


def release_memory(model: nn.Module) -> None:
    """Drop the model's gradients and return cached device memory, before a retry."""
    for p in model.parameters():
        p.grad = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Estimator(ABC):
    """A zero-cost proxy: a score for an untrained network, higher is better.

    Class attributes say what the estimator needs so callers can prepare inputs:
    ``needs_data`` (real images), ``needs_labels``, ``num_batches``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_data: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = True
    num_batches: ClassVar[int] = 1
    higher_is_better: ClassVar[bool] = True
    #: True for estimators that take a calibrated gradient ``interval`` setting (Sweetimator family).
    needs_calibration: ClassVar[bool] = False
    #: What the estimator reads from ``estimators._shared_pass`` (weight gradients, input Jacobian).
    #: A composite scores all its parts that read anything on one network, with one forward pass.
    shared_pass_reads: ClassVar[frozenset[str]] = frozenset()

    def settings(self) -> dict[str, Any]:
        """Every setting that changes the score; part of cache keys and run records."""
        return {}

    @abstractmethod
    def score(
        self,
        model: nn.Module,
        batches: Sequence[Batch],
        depth_units: Sequence[nn.Module] | None = None,
    ) -> float:
        """The raw score; may raise ``EstimatorError`` with a reason."""

    def evaluate(
        self,
        model: nn.Module,
        batches: Sequence[Batch],
        depth_units: Sequence[nn.Module] | None = None,
    ) -> EstimatorResult:
        """``score`` wrapped so a NaN/inf or an exception is a failed result, not a crash.

        Out of memory, it retries once on the first half of every batch (same model, gradients
        freed, device cache emptied); out of memory again, it raises.
        """
        start = time.perf_counter()
        extra: dict[str, Any] = {}
        try:
            value, smaller = _score_or_halve(self, model, batches, depth_units)
            if smaller is not None:  # retried outside the handler, so the failed pass's tensors are freed
                release_memory(model)
                extra = {"oom_retry": True, "batch_size": len(smaller[0][0])}
                value = float(self.score(model, smaller, depth_units))
        except (EstimatorError, RuntimeError, ValueError, ArithmeticError) as exc:
            if is_out_of_memory(exc):
                raise
            return EstimatorResult(None, time.perf_counter() - start, "failed", f"{type(exc).__name__}: {exc}", extra)
        seconds = time.perf_counter() - start
        if not math.isfinite(value):
            return EstimatorResult(None, seconds, "failed", f"non-finite score ({value}) from {self.name}", extra)
        return EstimatorResult(value, seconds, extra=extra)


def _score_or_halve(estimator: Estimator, model: nn.Module, batches: Sequence[Batch],
                    depth_units: Sequence[nn.Module] | None) -> tuple[float, list[Batch] | None]:
    """The score, or (nan, the halved batches) after running out of memory on batches that can shrink."""
    try:
        return float(estimator.score(model, batches, depth_units)), None
    except RuntimeError as exc:
        smaller = halved(batches) if is_out_of_memory(exc) else None
        if smaller is None:
            raise
        return math.nan, smaller
