"""From what the user asked for to a complete ``ScoringSettings``: the one place that checks
estimator options and resolves the Sweetimator interval (given, or calibrated and cached)
and a composite's normalisation (given, or computed from the cached calibration-sample scores).

Search, correlate and the API all go through ``resolve_scoring`` (``resolve_estimator_settings``
for a model outside any space), so an option is accepted or refused the same way everywhere,
and the settings a run records are the ones it scored with.
"""
from __future__ import annotations

from typing import Any, Callable

import estimators
import search_spaces
from estimators.base import EstimatorError
from estimators.sweet import check_interval
from evonas.data import ImageDataset
from evonas.errors import EvonasError
from evonas.scoring.calibration import calibration_for, reference_scores
from evonas.scoring.composite import Composite, Normalisation, Part, composite_settings, estimator_class
from evonas.settings import DEFAULT_CALIBRATION_ARCHS, ScoringSettings, check_batch_policy

#: Finds the interval when none is given (calibrates, or raises saying how to get one).
FindInterval = Callable[[], tuple[float, float]]
#: Finds a composite's normalisation from its parts' resolved settings, and where it came from.
FindNormalisation = Callable[[dict[str, dict[str, Any]]], tuple[dict[str, Normalisation], dict[str, Any]]]


def canonical_name(name: str) -> str:
    """A single estimator's name, or a composite's canonical spelling (``jacov=1.0`` -> ``jacov``)."""
    return estimator_class(name).name or name


def parse_estimators(text: str) -> list[str]:
    """Comma-separated estimators or composites, each checked, in order, no repeats (canonical spelling)."""
    names = list(dict.fromkeys(canonical_name(n.strip()) for n in text.split(",") if n.strip()))
    if not names:
        raise EvonasError("no estimator given; pass --estimator NAME[,NAME...] (see `evonas estimators`)")
    return names


def checked_interval(interval: Any) -> tuple[float, float]:
    """A given interval as ``(lo, hi)``, or a one-line error saying what is wrong."""
    try:
        return check_interval(interval, "--interval")
    except EstimatorError as exc:
        raise EvonasError(str(exc)) from None


def resolve_interval(
    space: str, dataset: str, data_dir: str | None, batch_size: int, seed: int,
    override: tuple[float, float] | None = None, progress: Callable[[int, int], None] | None = None,
    data: ImageDataset | None = None,
) -> tuple[float, float]:
    """``override`` when given (checked), else the cached or freshly computed calibration."""
    if override is not None:
        return checked_interval(override)
    return calibration_for(space, dataset, data_dir, batch_size, seed, progress=progress, data=data).interval


def resolve_estimator_settings(
    estimator: str, *, interval: tuple[float, float] | None, estimator_settings: dict[str, Any] | None,
    find_interval: FindInterval, find_normalisation: FindNormalisation,
) -> dict[str, Any]:
    """The complete, checked ``estimator_settings`` of a single or composite estimator.

    ``interval`` is only for estimators that need one (the Sweetimator family); giving it to
    another estimator is an error, not silently ignored; without it ``find_interval()`` gives it.
    """
    cls = estimator_class(estimator)
    if issubclass(cls, Composite):
        return _composite(cls, interval, estimator_settings or {}, find_interval, find_normalisation)
    settings = dict(estimator_settings or {})
    if cls.needs_calibration:
        settings["interval"] = list(checked_interval(interval) if interval is not None else find_interval())
    elif interval is not None:
        raise EvonasError(f"--interval only applies to the Sweetimator family, not {estimator!r}")
    try:
        instance = estimators.get(estimator, **settings)
    except (TypeError, EstimatorError) as exc:
        raise EvonasError(f"bad settings for estimator {estimator!r}: {exc}") from None
    return {**settings, **instance.settings()}


def resolve_scoring(
    space: str,
    estimator: str,
    *,
    dataset: str = "cifar10",
    data_dir: str | None = None,
    batch_size: int = 64,
    batch_policy: str = "fixed",
    seed: int = 0,
    interval: tuple[float, float] | None = None,
    estimator_settings: dict[str, Any] | None = None,
    build_options: dict[str, Any] | None = None,
    calibration_progress: Callable[[int, int], None] | None = None,
    data: ImageDataset | None = None,
) -> ScoringSettings:
    """Complete scoring settings: estimator options checked, interval resolved, build options filled.

    A missing interval is calibrated on the space (cached); a composite's missing normalisation
    comes from its parts' scores on the calibration sample (cached), under this very scoring setup.
    """
    check_batch_policy(batch_policy)
    build = dict(search_spaces.get(space).proxy_options() if build_options is None else build_options)

    def find_interval() -> tuple[float, float]:
        return resolve_interval(space, dataset, data_dir, batch_size, seed, None, calibration_progress, data)

    def find_normalisation(parts: dict[str, dict[str, Any]]) -> tuple[dict[str, Normalisation], dict[str, Any]]:
        scores = reference_scores(space, parts, dataset, data_dir, batch_size, seed, build,
                                  progress=calibration_progress, data=data)
        return ({name: Normalisation.from_scores(name, scores[name]) for name in parts},
                {"sample": "calibration", "num_archs": DEFAULT_CALIBRATION_ARCHS, "seed": seed})

    settings = resolve_estimator_settings(estimator, interval=interval, estimator_settings=estimator_settings,
                                          find_interval=find_interval, find_normalisation=find_normalisation)
    return ScoringSettings(
        space=space, estimator=canonical_name(estimator), estimator_settings=settings, dataset=dataset,
        data_dir=data_dir, batch_size=batch_size, batch_policy=batch_policy, seed=seed, build_options=build,
    )


def _composite(
    cls: type[Composite], interval: tuple[float, float] | None, given: dict[str, Any],
    find_interval: FindInterval, find_normalisation: FindNormalisation,
) -> dict[str, Any]:
    """A composite's settings: each part resolved like a single estimator, then normalised.

    ``given`` may hold ``components`` (per-part options by name) and ``normalisation`` (per-part
    ``{transform, center, scale, unit}``, all parts); without it ``find_normalisation`` measures it.
    """
    unknown = sorted(set(given) - {"components", "normalisation"})
    if unknown:
        raise EvonasError(f"composite {cls.name!r} takes the settings components and normalisation, "
                          f"not {', '.join(unknown)}")
    if interval is not None and not cls.needs_calibration:
        raise EvonasError(f"--interval only applies to the Sweetimator family, not to any part of {cls.name!r}")
    options = given.get("components") or {}
    extra = sorted(set(options) - set(cls.names))
    if extra:
        raise EvonasError(f"components {', '.join(extra)} are not parts of composite {cls.name!r}")
    resolved = {
        name: resolve_estimator_settings(
            name, interval=interval if estimator_class(name).needs_calibration else None,
            estimator_settings=options.get(name), find_interval=find_interval, find_normalisation=find_normalisation)
        for name in cls.names
    }
    norms = given.get("normalisation")
    if norms is not None:
        if not isinstance(norms, dict) or sorted(norms) != sorted(cls.names):
            raise EvonasError(f"normalisation of composite {cls.name!r} must give every part: {', '.join(cls.names)}")
        fixed = {name: Normalisation.from_dict(name, norms[name]) for name in cls.names}
        reference: dict[str, Any] = {"given": True}
    else:
        fixed, reference = find_normalisation(resolved)
    return composite_settings([Part(name, weight, resolved[name], fixed[name]) for name, weight in cls.parts],
                              reference)
