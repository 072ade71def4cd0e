"""Composite estimators: a weighted sum of registered estimators, each normalised by fixed statistics.

A composite is written ``sweet+sweet_ntk+jacov``; a part may carry a weight, ``jacov=0.5``
(default 1). Population ranks would make a cell's score depend on the other cells scored, so
a composite normalises each part with statistics fixed before any search, on the calibration
sample: the median ``center`` and robust spread ``scale`` (inter-quartile range / 1.349) of
``t(x) = asinh(x / unit)`` for a non-negative score (``unit``: the smallest positive sample
score; log-like above it, and a dead cell's 0 stays finite) or of ``t(x) = x`` for a signed
one. A cell's part score ``x`` becomes ``log Phi((t(x) - center) / scale)``, the log of a
smooth CDF: a fixed version of the sum of log-ranks AZ-NAS aggregates with, strictly
increasing (no ties, no ceiling at the sample's extremes) and strongly penalising a cell that
is poor on any part. The composite score is the weighted sum over parts, so it stays a pure
function of one cell and the search's score cache, resumes and Ray workers all keep working.

A composite is an ``Estimator`` like any other (``Composite``; ``parse_composite`` makes its
class), so every caller handles one type. Outside a space its normalisation is given, or
measured on a sample of the user's models (``evonas.scoring.models.composite_normalisation``).
"""
from __future__ import annotations

import copy
import math
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, ContextManager, Iterator, Mapping, Sequence

import torch
from scipy.special import log_ndtr
from torch import nn

import estimators
from estimators._shared_pass import shared_pass
from estimators.base import Batch, Estimator, EstimatorError, EstimatorResult
from evonas.errors import EvonasError

SEPARATOR = "+"
WEIGHT_MARK = "="
#: The composite the benchmark chose (``benchmarks/consistency_all.md``), listed by ``evonas estimators``.
RECOMMENDED: dict[str, str] = {
    "sweet_snip+sweet_ntk+jacov": "NB-201: chosen on 150 cells, Spearman 0.952 on 150 others, 0.945 over "
                                  "all 15,625 (benchmarks/consistency_all.md); 1.4x sweet's time. Not for "
                                  "DARTS: 0.558 there against sweet_snip's 0.683 (benchmarks/consistency_darts.md)",
    "sweet_snip+sweet_ntk+synflow+jacov": "NB-201 head: chosen on half the cells by top-1%/5% precision, top-ranked "
                                          "accuracy and within-size Spearman; on the other half P@5% 0.628 against "
                                          "0.570, Spearman 0.944 (benchmarks/head_selection.md). DARTS: use sweet_snip",
}
TRANSFORMS = ("asinh", "identity")
#: The inter-quartile range of a standard normal distribution.
_NORMAL_IQR = 1.3489795003921634


def is_composite(name: str) -> bool:
    """Whether an estimator name is a composite spec (holds ``+`` or a weight)."""
    return SEPARATOR in name or WEIGHT_MARK in name


def _weight(text: str, spec: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        weight = math.nan
    if not (weight > 0 and math.isfinite(weight)):
        raise EvonasError(f"bad weight {text!r} in composite {spec!r}; a weight is a positive number, like jacov=0.5")
    return weight


def parse_composite(spec: str) -> type["Composite"]:
    """``A+B=0.5+C`` -> its ``Composite`` class; each part a registered single estimator named once (at least two)."""
    registry = estimators.available()
    parts: list[tuple[str, float]] = []
    for raw in spec.split(SEPARATOR):
        name, mark, weight = (s.strip() for s in raw.partition(WEIGHT_MARK))
        if not name:
            raise EvonasError(f"empty part in composite {spec!r}; write estimators joined by +, like sweet+jacov")
        if name not in registry:
            raise EvonasError(f"unknown estimator {name!r} in composite {spec!r}; choose from: "
                              f"{', '.join(registry)} (see `evonas estimators`)")
        if name in (n for n, _ in parts):
            raise EvonasError(f"{name!r} appears twice in composite {spec!r}; give each estimator once, with a weight")
        parts.append((name, _weight(weight, spec) if mark else 1.0))
    if len(parts) < 2:
        raise EvonasError(f"composite {spec!r} has one part; a composite needs at least two, like sweet+jacov")
    return composite_class(tuple(parts))


@dataclass(frozen=True)
class Normalisation:
    """Fixed statistics that map a part's raw score onto a log-CDF value."""

    transform: str
    center: float
    scale: float
    unit: float = 1.0

    @classmethod
    def from_scores(cls, name: str, scores: Sequence[float | None]) -> "Normalisation":
        """Median and robust spread of the transformed scores of the calibration sample; failures left out."""
        finite = [s for s in scores if s is not None and math.isfinite(s)]
        if len(finite) < 2:
            raise EvonasError(f"{name} scored {len(finite)} of {len(scores)} calibration cells; "
                              "it cannot be normalised for a composite")
        positive = [s for s in finite if s > 0]
        unit = min(positive) if positive and min(finite) >= 0 else 1.0
        transform = "asinh" if positive and min(finite) >= 0 else "identity"
        values = [math.asinh(s / unit) if transform == "asinh" else s for s in finite]
        quartiles = statistics.quantiles(values, n=4, method="inclusive")
        scale = (quartiles[2] - quartiles[0]) / _NORMAL_IQR
        if not scale > 0:
            raise EvonasError(f"{name} gives (nearly) the same score to the calibration cells; "
                              "it cannot rank them inside a composite")
        return cls(transform, statistics.median(values), scale, unit)

    @classmethod
    def from_dict(cls, name: str, data: Any) -> "Normalisation":
        """Checked statistics from settings (a run's record, or given by hand)."""
        try:
            norm = cls(str(data["transform"]), float(data["center"]), float(data["scale"]), float(data.get("unit", 1.0)))
        except (AttributeError, KeyError, TypeError, ValueError):
            raise EvonasError(f"normalisation of {name!r} must be {{transform, center, scale[, unit]}}, "
                              f"not {data!r}") from None
        if norm.transform not in TRANSFORMS or not (math.isfinite(norm.center) and 0 < norm.scale < math.inf
                                                   and 0 < norm.unit < math.inf):
            raise EvonasError(f"normalisation of {name!r} needs transform in {TRANSFORMS}, a finite center and a "
                              f"positive scale and unit, not {data!r}")
        return norm

    def to_dict(self) -> dict[str, Any]:
        return {"transform": self.transform, "center": self.center, "scale": self.scale, "unit": self.unit}

    def __call__(self, score: float) -> float:
        """``log Phi(z)`` of the part's raw score."""
        value = math.asinh(score / self.unit) if self.transform == "asinh" else score
        return float(log_ndtr((value - self.center) / self.scale))


@dataclass(frozen=True)
class Part:
    """One resolved part: estimator name, weight, its own settings, and its normalisation once fixed."""

    name: str
    weight: float
    settings: dict[str, Any]
    normalisation: Normalisation | None = None

    def to_dict(self) -> dict[str, Any]:
        norm = None if self.normalisation is None else self.normalisation.to_dict()
        return {"name": self.name, "weight": self.weight, "settings": self.settings, "normalisation": norm}


def composite_settings(parts: Sequence[Part], reference: Mapping[str, Any]) -> dict[str, Any]:
    """The composite's ``estimator_settings``: every part and where its normalisation came from."""
    return {"parts": [p.to_dict() for p in parts], "reference": dict(reference)}



#: Makes the network one group of estimators runs on: ``(model, depth units or None)``, inside
#: whatever context the group must run in (the Scorer's seeded RNG, or a copy of a given model).
Network = Callable[[], ContextManager[tuple[nn.Module, Sequence[nn.Module] | None]]]
Group = list[tuple[str, Estimator]]


def share_passes(members: Mapping[str, Estimator]) -> list[Group]:
    """Estimators grouped so each group runs on one network: every estimator that reads the shared
    pass together (what it reads does not depend on its settings), every other one on its own."""
    readers = [(name, est) for name, est in members.items() if est.shared_pass_reads]
    alone = [[(name, est)] for name, est in members.items() if not est.shared_pass_reads]
    return ([readers] if readers else []) + alone


def run_groups(groups: Sequence[Group], network: Network, batches: Sequence[Batch]) -> dict[str, EstimatorResult]:
    """Every estimator's own result, each group on a fresh ``network()`` with one shared pass."""
    results = {}
    for group in groups:
        reads = frozenset().union(*(est.shared_pass_reads for _, est in group))
        with network() as (model, units), shared_pass(reads):
            for name, est in group:
                results[name] = est.evaluate(model, batches[:est.num_batches], units)
    return results


@contextmanager
def _untouched_copy(model: nn.Module, units: Sequence[nn.Module] | None
                    ) -> Iterator[tuple[nn.Module, Sequence[nn.Module] | None]]:
    """A deep copy of ``model`` (and of its depth units), scored on torch's RNG as it was on entry,
    so every group draws the random numbers it would draw alone."""
    memo: dict[int, Any] = {}
    clone = copy.deepcopy(model, memo)
    cuda = sorted({p.device.index or 0 for p in clone.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        yield clone, None if units is None else [copy.deepcopy(u, memo) for u in units]


class Composite(Estimator):
    """A weighted sum of normalised registered estimators, itself an ``Estimator``.

    ``parse_composite("sweet+jacov=0.5")`` gives the class (its class attributes answer what
    callers ask any estimator class); an instance takes the resolved ``estimator_settings``:
    ``parts`` (name, weight, settings, normalisation of each) and ``reference`` (where the
    normalisation came from). On a given model every group of parts (the shared-pass readers
    together, every other part alone) scores its own deep copy, so each part's score is its
    score alone on that model and the caller's model is left untouched.
    """

    #: ``(name, weight)`` of every part, in order; set by ``composite_class``.
    parts: ClassVar[tuple[tuple[str, float], ...]] = ()
    names: ClassVar[tuple[str, ...]] = ()
    higher_is_better: ClassVar[bool] = True

    def __init__(self, parts: Sequence[Mapping[str, Any]] = (), reference: Mapping[str, Any] | None = None) -> None:
        if not self.parts:
            raise TypeError("make a composite class with parse_composite(spec) first")
        if [p.get("name") if isinstance(p, Mapping) else None for p in parts] != list(self.names):
            raise EvonasError(f"settings of composite {self.name!r} must list its parts {list(self.names)} in order; "
                              "resolve them with evonas.scoring.resolve_scoring")
        self.resolved: tuple[Part, ...] = tuple(
            Part(name, weight, dict(entry.get("settings") or {}),
                 None if entry.get("normalisation") is None else Normalisation.from_dict(name, entry["normalisation"]))
            for entry, (name, weight) in zip(parts, self.parts))
        self.reference = dict(reference or {})
        self.groups = share_passes({p.name: estimators.get(p.name, **p.settings) for p in self.resolved})

    def settings(self) -> dict[str, Any]:
        return composite_settings(self.resolved, self.reference)

    def part_results(self, model: nn.Module, batches: Sequence[Batch],
                     depth_units: Sequence[nn.Module] | None = None) -> dict[str, EstimatorResult]:
        """Each part's own result on ``model`` (each group on a deep copy)."""
        return run_groups(self.groups, lambda: _untouched_copy(model, depth_units), batches)

    def evaluate(self, model: nn.Module, batches: Sequence[Batch],
                 depth_units: Sequence[nn.Module] | None = None) -> EstimatorResult:
        start = time.perf_counter()
        results = self.part_results(model, batches, depth_units)
        return self.combine(results, time.perf_counter() - start)

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units: Sequence[nn.Module] | None = None) -> float:
        result = self.evaluate(model, batches, depth_units)
        if not result.ok or result.score is None:
            raise EstimatorError(result.error or "failed")
        return result.score

    def combine(self, results: Mapping[str, EstimatorResult], seconds: float) -> EstimatorResult:
        """The composite result of per-part results: the weighted sum, or the first part's failure.

        A part retried at a smaller batch after running out of memory marks the composite too.
        """
        retried = [r.extra["batch_size"] for r in results.values() if r.extra.get("oom_retry")]
        extra: dict[str, Any] = {"oom_retry": True, "batch_size": min(retried)} if retried else {}
        values: dict[str, float] = {}
        for part in self.resolved:
            res = results[part.name]
            if not res.ok or res.score is None:
                return EstimatorResult(None, seconds, "failed", f"{part.name} failed: {res.error}", extra)
            values[part.name] = res.score
        total = 0.0
        for part in self.resolved:
            if part.normalisation is None:
                raise EvonasError(f"composite part {part.name!r} has no normalisation; resolve the settings first")
            total += part.weight * part.normalisation(values[part.name])
        if not math.isfinite(total):
            return EstimatorResult(None, seconds, "failed", f"non-finite composite score ({total})", extra)
        return EstimatorResult(total, seconds, extra={"parts": values, **extra})


def composite_class(parts: tuple[tuple[str, float], ...]) -> type[Composite]:
    """The ``Composite`` subclass of these ``(name, weight)`` parts (registered estimators)."""
    registry = estimators.available()
    classes = [registry[name] for name, _ in parts]
    names = tuple(name for name, _ in parts)
    name = SEPARATOR.join(n if w == 1.0 else f"{n}{WEIGHT_MARK}{w:g}" for n, w in parts)
    return type(f"Composite[{name}]", (Composite,), {
        "__module__": __name__, "name": name, "parts": parts, "names": names,
        "description": f"composite: weighted sum of log-CDF-normalised {', '.join(names)}",
        "needs_calibration": any(c.needs_calibration for c in classes),
        "needs_data": any(c.needs_data for c in classes),
        "needs_labels": any(c.needs_labels for c in classes),
        "num_batches": max(c.num_batches for c in classes),
    })


def estimator_class(name: str) -> type[Estimator]:
    """The registered estimator class, or a composite's ``Composite`` class; a one-line error otherwise."""
    if is_composite(name):
        return parse_composite(name)
    cls = estimators.available().get(name)
    if cls is None:
        estimators.get(name)  # raises with the list of registered names
    return cls


def make_estimator(name: str, settings: Mapping[str, Any]) -> Estimator:
    """An instance of a single or composite estimator from its (resolved) ``estimator_settings``."""
    return estimator_class(name)(**settings)
