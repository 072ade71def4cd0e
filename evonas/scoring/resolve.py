"""From what the user asked for to a complete ``ScoringSettings``: the one place that checks
estimator options and resolves the Sweetimator interval (given, or calibrated and cached).

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
from evonas.scoring.calibration import calibration_for
from evonas.settings import ScoringSettings, check_batch_policy


def estimator_class(name: str) -> type[estimators.Estimator]:
    """The registered estimator class (UnknownEstimatorError naming the choices otherwise)."""
    cls = estimators.available().get(name)
    if cls is None:
        estimators.get(name)  # raises with the list of registered names
    return cls


def parse_estimators(text: str) -> list[str]:
    """Comma-separated estimator names, each checked against the registry, in order, no repeats."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise EvonasError("no estimator given; pass --estimator NAME[,NAME...] (see `evonas estimators`)")
    for name in names:
        estimator_class(name)
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
    build = search_spaces.get(space).proxy_options() if build_options is None else build_options
    return ScoringSettings(
        space=space, estimator=estimator, estimator_settings={**settings, **instance.settings()},
        dataset=dataset, data_dir=data_dir, batch_size=batch_size, batch_policy=batch_policy, seed=seed,
        build_options=dict(build),
    )
