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
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from scipy.special import log_ndtr

import estimators
from estimators.base import EstimatorResult
from evonas.errors import EvonasError

SEPARATOR = "+"
WEIGHT_MARK = "="
#: The composite the benchmark chose (``benchmarks/consistency_all.md``), listed by ``evonas estimators``.
RECOMMENDED: dict[str, str] = {
    "sweet_snip+sweet_ntk+jacov": "NB-201: chosen on 150 cells, Spearman 0.952 on 150 others, 0.945 over "
                                  "all 15,625 (benchmarks/consistency_all.md); 1.4x sweet's time. Not for "
                                  "DARTS: 0.558 there against sweet_snip's 0.683 (benchmarks/consistency_darts.md)",
}
TRANSFORMS = ("asinh", "identity")
#: The inter-quartile range of a standard normal distribution.
_NORMAL_IQR = 1.3489795003921634


@dataclass(frozen=True)
class CompositeSpec:
    """The parts and weights of a composite, plus the class-level facts callers ask estimators for."""

    parts: tuple[tuple[str, float], ...]

    higher_is_better = True

    @property
    def name(self) -> str:
        """The canonical spelling: parts in the given order, a weight only where it is not 1."""
        return SEPARATOR.join(n if w == 1.0 else f"{n}{WEIGHT_MARK}{w:g}" for n, w in self.parts)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.parts]

    def _classes(self) -> list[type[estimators.Estimator]]:
        registry = estimators.available()
        return [registry[n] for n in self.names]

    @property
    def needs_calibration(self) -> bool:
        return any(c.needs_calibration for c in self._classes())

    @property
    def needs_data(self) -> bool:
        return any(c.needs_data for c in self._classes())

    @property
    def needs_labels(self) -> bool:
        return any(c.needs_labels for c in self._classes())

    @property
    def num_batches(self) -> int:
        return max(c.num_batches for c in self._classes())

    @property
    def description(self) -> str:
        return f"composite: weighted sum of log-CDF-normalised {', '.join(self.names)}"


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


def parse_composite(spec: str) -> CompositeSpec:
    """``A+B=0.5+C`` -> its parts, each a registered single estimator named once (at least two)."""
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
    return CompositeSpec(tuple(parts))


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


def parts_from_settings(name: str, settings: Mapping[str, Any]) -> list[Part]:
    """The parts recorded in a composite's ``estimator_settings`` (checked against its name)."""
    spec = parse_composite(name)
    raw = settings.get("parts")
    if not isinstance(raw, list) or [p.get("name") for p in raw if isinstance(p, dict)] != spec.names:
        raise EvonasError(f"settings of composite {name!r} must list its parts {spec.names} in order; "
                          "resolve them with evonas.scoring.resolve_scoring")
    parts = []
    for entry, (part, weight) in zip(raw, spec.parts):
        norm = entry.get("normalisation")
        parts.append(Part(part, weight, dict(entry.get("settings") or {}),
                          None if norm is None else Normalisation.from_dict(part, norm)))
    return parts


def combine(parts: Sequence[Part], results: Mapping[str, EstimatorResult], seconds: float) -> EstimatorResult:
    """The composite result of per-part results: the weighted sum, or the first part's failure."""
    values: dict[str, float] = {}
    for part in parts:
        res = results[part.name]
        if not res.ok or res.score is None:
            return EstimatorResult(None, seconds, "failed", f"{part.name} failed: {res.error}")
        values[part.name] = res.score
    total = 0.0
    for part in parts:
        if part.normalisation is None:
            raise EvonasError(f"composite part {part.name!r} has no normalisation; resolve the settings first")
        total += part.weight * part.normalisation(values[part.name])
    if not math.isfinite(total):
        return EstimatorResult(None, seconds, "failed", f"non-finite composite score ({total})")
    return EstimatorResult(total, seconds, extra={"parts": values})
