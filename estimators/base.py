"""The Estimator interface and its result type.

An estimator sees only an ``nn.Module``, a list of ``(images, labels)`` batches and,
for calibration-aware estimators, the model's depth-unit modules. It never imports
from ``evonas`` or ``search_spaces``.
"""
from __future__ import annotations

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
        """``score`` wrapped so a NaN/inf or an exception is a failed result, not a crash."""
        start = time.perf_counter()
        try:
            value = float(self.score(model, batches, depth_units))
        except (EstimatorError, RuntimeError, ValueError, ArithmeticError) as exc:
            return EstimatorResult(None, time.perf_counter() - start, "failed", f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - start
        if not math.isfinite(value):
            return EstimatorResult(None, seconds, "failed", f"non-finite score ({value}) from {self.name}")
        return EstimatorResult(value, seconds)
