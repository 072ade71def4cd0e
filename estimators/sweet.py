"""Sweetimator and its variants: scores built from the weights whose gradient is "sweet".

At initialisation, the number of Conv2d/Linear weights whose absolute gradient lies in a
calibrated interval ``[lo, hi)`` ranks architectures by trained accuracy ("Sweet Gradient
Matters"). The interval is found without training by ``calibrate``: the gradient bin
whose share of weights most consistently *grows with depth* across sampled networks.

Everything here follows DESIGN.md section 2 exactly, because the calibrated interval is
decided by small trend margins: train mode (batch statistics), one batch, cross-entropy
against the true labels, one backward pass, and only the ``.weight`` of every ``Conv2d``
and ``Linear`` module (no biases, no BatchNorm parameters).
"""
from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence

import torch
from torch import nn

from estimators import register
from estimators._shared_pass import WEIGHT_GRADIENTS, read, weight_gradients
from estimators._torch_utils import conv_linear_weights
from estimators.base import Batch, Estimator, EstimatorError

#: Half-decade candidate bounds; bin ``i`` is ``[GRID[i], GRID[i + 1])`` (21 bins).
GRID: tuple[float, ...] = (
    0.0, 5e-10, 1e-9, 5e-9, 1e-8, 5e-8, 1e-7, 5e-7, 1e-6, 5e-6, 1e-5,
    5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1, 5e-1, 1.0, 5.0,
)


def _flat_abs(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors]).abs_()


def check_interval(interval: Any, name: str) -> tuple[float, float]:
    """``(lo, hi)`` as floats with ``0 <= lo < hi``; an ``EstimatorError`` saying what is wrong otherwise."""
    if interval is None:
        raise EstimatorError(
            f"{name} needs a gradient interval: pass interval=(lo, hi) "
            "(run `evonas calibrate` to find it, or give --interval LO HI)"
        )
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise EstimatorError(f"{name}: interval must be two numbers (lo, hi), got {interval!r}") from None
    if not 0.0 <= lo < hi:
        raise EstimatorError(f"{name}: interval must satisfy 0 <= lo < hi, got ({lo}, {hi})")
    return lo, hi


class _SweetFamily(Estimator):
    """Shared scoring: one backward pass, then a reduction over the sweet weights."""

    needs_calibration: ClassVar[bool] = True
    shared_pass_reads: ClassVar[frozenset[str]] = frozenset({WEIGHT_GRADIENTS})

    def __init__(self, interval: Sequence[float] | None = None) -> None:
        self.interval = check_interval(interval, self.name)

    def settings(self) -> dict[str, Any]:
        return {"interval": list(self.interval)}

    def score(
        self,
        model: nn.Module,
        batches: Sequence[Batch],
        depth_units: Sequence[nn.Module] | None = None,
    ) -> float:
        if not batches:
            raise EstimatorError(f"{self.name} needs one batch of labelled images")
        weights, grads = read(model, batches[0], WEIGHT_GRADIENTS)
        g = _flat_abs(grads)
        # Compare in the gradient's own dtype, exactly as calibration bins them.
        lo, hi = torch.tensor(self.interval, dtype=g.dtype, device=g.device)
        sweet = (g >= lo) & (g < hi)
        return self._reduce(weights, g, sweet)

    @abstractmethod
    def _reduce(self, weights: Sequence[nn.Parameter], g: torch.Tensor, sweet: torch.Tensor) -> float:
        """The score from all weights, their ``|grad|`` (flat) and the sweet mask."""


@register
class Sweetimator(_SweetFamily):
    name = "sweet"
    description = "Sweetimator: number of Conv/Linear weights with |grad| in the calibrated interval"

    def _reduce(self, weights: Sequence[nn.Parameter], g: torch.Tensor, sweet: torch.Tensor) -> float:
        return float(int(sweet.sum().item()))


@register
class SweetSNIP(_SweetFamily):
    name = "sweet_snip"
    description = "SweetSNIP: sum of |w * grad| over the weights with |grad| in the calibrated interval"

    def _reduce(self, weights: Sequence[nn.Parameter], g: torch.Tensor, sweet: torch.Tensor) -> float:
        return (_flat_abs(weights) * g)[sweet].sum(dtype=torch.float64).item()


@register
class SweetNTK(_SweetFamily):
    name = "sweet_ntk"
    description = "SweetNTK: sum of grad^2 over the weights with |grad| in the calibrated interval"

    def _reduce(self, weights: Sequence[nn.Parameter], g: torch.Tensor, sweet: torch.Tensor) -> float:
        return g[sweet].square().sum(dtype=torch.float64).item()


# ---- calibration --------------------------------------------------------------------


@dataclass
class CalibrationResult:
    """Mean depth trend of every gradient bin and the interval it selects."""

    grid: tuple[float, ...]
    means: list[float]
    interval: tuple[float, float]
    num_networks: int
    trends: list[list[float]] = field(default_factory=list, repr=False)

    @property
    def bins(self) -> list[tuple[float, float]]:
        return list(zip(self.grid[:-1], self.grid[1:]))

    @property
    def chosen(self) -> int:
        """Index of the chosen bin."""
        return self.bins.index(self.interval)

    def to_dict(self) -> dict[str, Any]:
        return {
            "grid": list(self.grid), "means": self.means, "interval": list(self.interval),
            "num_networks": self.num_networks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CalibrationResult":
        lo, hi = data["interval"]
        return cls(tuple(data["grid"]), list(data["means"]), (lo, hi), int(data["num_networks"]))


def bin_counts(grads: Sequence[torch.Tensor], grid: Sequence[float] = GRID) -> torch.Tensor:
    """How many entries of ``grads`` have ``|g|`` in each bin ``[grid[i], grid[i+1])`` (int64)."""
    g = _flat_abs(grads)
    edges = torch.tensor(grid, dtype=g.dtype, device=g.device)
    # right=True gives index i with edges[i-1] <= g < edges[i]; 0 and len(edges) fall outside.
    idx = torch.bucketize(g, edges, right=True)
    return torch.bincount(idx, minlength=len(edges) + 1)[1 : len(edges)].cpu()


def depth_trend(
    model: nn.Module, depth_units: Sequence[nn.Module], batch: Batch, grid: Sequence[float] = GRID
) -> torch.Tensor:
    """Per-bin trend ``(1/(D-1)) * sum_d sign(r_{d+1} - r_d)`` of one network (float64, one per bin).

    ``r_d`` is the share of unit ``d``'s Conv2d/Linear weights whose gradient falls in the
    bin. A unit without such weights (e.g. an NB-201 cell of only pooling, skip and none
    ops) has no weight in any bin, so its ``r_d`` is 0; it stays in the sequence so ``D``
    is the same for every network of a space.
    """
    if len(depth_units) < 2:
        raise EstimatorError(f"calibration needs at least two depth units, got {len(depth_units)}")
    weights, grads = weight_gradients(model, batch)
    grad_of = {id(w): g for w, g in zip(weights, grads)}
    ratios = torch.zeros(len(depth_units), len(grid) - 1, dtype=torch.float64)
    for d, unit in enumerate(depth_units):
        unit_weights = conv_linear_weights(unit)
        missing = [w for w in unit_weights if id(w) not in grad_of]
        if missing:
            raise EstimatorError(f"depth unit {d} ({type(unit).__name__}) is not part of the model")
        total = sum(w.numel() for w in unit_weights)
        if total:
            ratios[d] = bin_counts([grad_of[id(w)] for w in unit_weights], grid).double() / total
    return torch.sign(ratios[1:] - ratios[:-1]).sum(dim=0) / (len(depth_units) - 1)


def choose_bin(means: Sequence[float]) -> int:
    """The bin with the largest mean trend; the first on ties, and the first if none is positive."""
    best = 0
    for i, m in enumerate(means):
        if m > means[best]:
            best = i
    return best if means[best] > 0 else 0


def calibrate(
    networks: Iterable[tuple[nn.Module, Sequence[nn.Module]]],
    batch: Batch,
    *,
    grid: Sequence[float] = GRID,
    progress: Callable[[int], None] | None = None,
) -> CalibrationResult:
    """Pick the sweet interval from ``(model, depth_units)`` pairs and one fixed batch.

    ``networks`` may be a generator, so each model is built just before it is measured
    and freed afterwards. ``progress(n)`` is called after the ``n``-th network.
    """
    trends = []
    for model, units in networks:
        trends.append(depth_trend(model, units, batch, grid).tolist())
        if progress is not None:
            progress(len(trends))
    if not trends:
        raise EstimatorError("calibration needs at least one network")
    means = [math.fsum(column) / len(trends) for column in zip(*trends)]
    best = choose_bin(means)
    return CalibrationResult(tuple(grid), means, (grid[best], grid[best + 1]), len(trends), trends)
