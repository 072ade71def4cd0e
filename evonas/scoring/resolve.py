"""From what the user asked for to a complete ``ScoringSettings``: the one place that checks
estimator options and resolves the Sweetimator interval (given, or calibrated and cached)
and a composite's normalisation (given, or computed from the cached calibration-sample scores).

Search, correlate and the API all go through ``resolve_scoring``, so an option is accepted or
refused the same way everywhere, and the settings a run records are the ones it scored with.
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
from evonas.scoring.composite import CompositeSpec, Normalisation, Part, composite_settings, is_composite, parse_composite
from evonas.settings import DEFAULT_CALIBRATION_ARCHS, ScoringSettings, check_batch_policy


def estimator_class(name: str) -> type[estimators.Estimator] | CompositeSpec:
    """The registered estimator class, or a composite's spec (it answers the same class-level
    questions: ``higher_is_better``, ``needs_calibration``, ...); a one-line error otherwise."""
    if is_composite(name):
        return parse_composite(name)
    cls = estimators.available().get(name)
    if cls is None:
        estimators.get(name)  # raises with the list of registered names
    return cls


def canonical_name(name: str) -> str:
    """A single estimator's name, or a composite's canonical spelling (``jacov=1.0`` -> ``jacov``)."""
    spec = estimator_class(name)
    return spec.name if isinstance(spec, CompositeSpec) else name


def parse_estimators(text: str) -> list[str]:
    """Comma-separated estimators or composites, each checked, in order, no repeats (canonical spelling)."""
    names = list(dict.fromkeys(canonical_name(n.strip()) for n in text.split(",") if n.strip()))
    if not names:
        raise EvonasError("no estimator given; pass --estimator NAME[,NAME...] (see `evonas estimators`)")
    return names


def resolve_interval(
    space: str, dataset: str, data_dir: str | None, batch_size: int, seed: int,
    override: tuple[float, float] | None = None, progress: Callable[[int, int], None] | None = None,
    data: ImageDataset | None = None,
) -> tuple[float, float]:
    """``override`` when given (checked), else the cached or freshly computed calibration."""
    if override is not None:
        try:
            return check_interval(override, "--interval")
        except EstimatorError as exc:
            raise EvonasError(str(exc)) from None
    return calibration_for(space, dataset, data_dir, batch_size, seed, progress=progress, data=data).interval


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

    ``interval`` is only for estimators that need one (the Sweetimator family); giving it to
    another estimator is an error, not silently ignored.
    """
    check_batch_policy(batch_policy)
    cls = estimator_class(estimator)
    build = search_spaces.get(space).proxy_options() if build_options is None else build_options
    if isinstance(cls, CompositeSpec):
        return ScoringSettings(
            space=space, estimator=cls.name, dataset=dataset, data_dir=data_dir, batch_size=batch_size,
            batch_policy=batch_policy, seed=seed, build_options=dict(build),
            estimator_settings=_composite(cls, space, dataset, data_dir, batch_size, seed, interval,
                                          estimator_settings or {}, dict(build), calibration_progress, data),
        )
    settings = dict(estimator_settings or {})
    if cls.needs_calibration:
        settings["interval"] = list(resolve_interval(space, dataset, data_dir, batch_size, seed, interval,
                                                     calibration_progress, data))
    elif interval is not None:
        raise EvonasError(f"--interval only applies to the Sweetimator family, not {estimator!r}")
    try:
        instance = estimators.get(estimator, **settings)
    except (TypeError, EstimatorError) as exc:
        raise EvonasError(f"bad settings for estimator {estimator!r}: {exc}") from None
    return ScoringSettings(
        space=space, estimator=estimator, estimator_settings={**settings, **instance.settings()},
        dataset=dataset, data_dir=data_dir, batch_size=batch_size, batch_policy=batch_policy, seed=seed,
        build_options=dict(build),
    )


def _composite(
    spec: CompositeSpec, space: str, dataset: str, data_dir: str | None, batch_size: int, seed: int,
    interval: tuple[float, float] | None, given: dict[str, Any], build: dict[str, Any],
    progress: Callable[[int, int], None] | None, data: ImageDataset | None,
) -> dict[str, Any]:
    """A composite's settings: each part resolved like a single estimator, then normalised.

    ``given`` may hold ``components`` (per-part options by name) and ``normalisation`` (per-part
    ``{transform, center, scale, unit}``, all parts); without it the normalisation is computed from
    each part's scores on the calibration sample (cached), under this very scoring setup.
    """
    unknown = sorted(set(given) - {"components", "normalisation"})
    if unknown:
        raise EvonasError(f"composite {spec.name!r} takes the settings components and normalisation, "
                          f"not {', '.join(unknown)}")
    if interval is not None and not spec.needs_calibration:
        raise EvonasError(f"--interval only applies to the Sweetimator family, not to any part of {spec.name!r}")
    options = given.get("components") or {}
    extra = sorted(set(options) - set(spec.names))
    if extra:
        raise EvonasError(f"components {', '.join(extra)} are not parts of composite {spec.name!r}")
    resolved = {}
    for name in spec.names:
        single = resolve_scoring(space, name, dataset=dataset, data_dir=data_dir, batch_size=batch_size, seed=seed,
                                 interval=interval if estimator_class(name).needs_calibration else None,
                                 estimator_settings=options.get(name), build_options=build,
                                 calibration_progress=progress, data=data)
        resolved[name] = single.estimator_settings
    norms = given.get("normalisation")
    if norms is not None:
        if not isinstance(norms, dict) or sorted(norms) != sorted(spec.names):
            raise EvonasError(f"normalisation of composite {spec.name!r} must give every part: {', '.join(spec.names)}")
        fixed = {name: Normalisation.from_dict(name, norms[name]) for name in spec.names}
        reference: dict[str, Any] = {"given": True}
    else:
        scores = reference_scores(space, resolved, dataset, data_dir, batch_size, seed, build, progress=progress,
                                  data=data)
        fixed = {name: Normalisation.from_scores(name, scores[name]) for name in spec.names}
        reference = {"sample": "calibration", "num_archs": DEFAULT_CALIBRATION_ARCHS, "seed": seed}
    parts = [Part(name, weight, resolved[name], fixed[name]) for name, weight in spec.parts]
    return composite_settings(parts, reference)
