"""Zero-cost scores, the Sweetimator calibration and composite normalisations for any ``nn.Module``.

Outside a registered search space nothing knows how a model was built, so the caller passes the
model itself and its images: a dataset (drawn exactly as a search's fixed batches) or
``(images, labels)`` batches. Estimators run a backward pass and move BatchNorm statistics
(synflow even rescales weights), so every model is scored as a deep copy, in train mode: the
caller's weights, gradients and mode stay as they were. Everything runs on torch's RNG forked
and seeded with ``seed``, so a score is reproducible and the caller's random state is untouched.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence, Union

import torch
from torch import nn

from estimators.base import Batch, Estimator, EstimatorError, EstimatorResult
from estimators.sweet import CalibrationResult, calibrate
from evonas.data import ImageDataset, load_dataset
from evonas.errors import EvonasError
from evonas.scoring.composite import Composite, Normalisation, Part, composite_settings, estimator_class, make_estimator
from evonas.scoring.resolve import FindInterval, FindNormalisation, resolve_estimator_settings
from evonas.scoring.scorer import fixed_batches, seeded_rng

#: A dataset name (loaded with ``load_dataset``), or an ``ImageDataset`` already loaded.
Data = Union[str, ImageDataset]
#: A function model -> its depth units, or submodule names (``["layer1", "layer2"]``).
DepthUnits = Union[Callable[[nn.Module], Sequence[nn.Module]], Sequence[str]]


@dataclass(frozen=True)
class ModelScore:
    """One model's score; ``status`` is "ok" or "failed" (``score`` None, ``reason`` says why).

    ``settings`` are the estimator settings it scored with (the interval, a composite's parts);
    ``extra`` holds what the estimator adds (a composite's part scores, ``oom_retry``).
    """

    score: float | None
    status: str
    reason: str | None
    seconds: float
    estimator: str
    settings: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise EvonasError(f"a model must be a torch.nn.Module, not {type(model).__name__}")
    return model


def _no_interval(estimator: str) -> FindInterval:
    def find() -> tuple[float, float]:
        raise EvonasError(f"{estimator} needs a gradient interval for a model outside a search space: pass "
                          "interval=(lo, hi), or find it with evonas.calibrate(models=[...], data=...)")
    return find


def _no_normalisation(estimator: str) -> FindNormalisation:
    def find(parts: dict[str, dict[str, Any]]) -> tuple[dict[str, Normalisation], dict[str, Any]]:
        raise EvonasError(f"composite {estimator} on a model needs normalisation={{part: {{transform, center, scale, "
                          "unit}}}}; measure it with evonas.composite_normalisation(models, ...)")
    return find


def model_batches(data: Data | None, batches: Iterable[Batch] | None, batch_size: int, seed: int, count: int,
                  device: torch.device, data_dir: str | None = None) -> list[Batch]:
    """``count`` batches on ``device``: the given ones, or the fixed batches of ``seed`` drawn from ``data``."""
    if (data is None) == (batches is None):
        raise EvonasError("give the images as data= (a dataset name or ImageDataset) or as "
                          "batches=[(images, labels), ...], one of the two")
    if batches is None:
        if batch_size < 1:
            raise EvonasError(f"batch size must be at least 1, got {batch_size}")
        dataset = load_dataset(data, split="train", data_dir=data_dir) if isinstance(data, str) else data
        if not isinstance(dataset, ImageDataset):
            raise EvonasError(f"data= must be a dataset name or an evonas ImageDataset, not {type(data).__name__}")
        return fixed_batches(dataset, batch_size, count, seed, device=device)
    given = list(batches)
    for i, batch in enumerate(given):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(t, torch.Tensor) for t in batch)
                and batch[0].dim() == 4 and len(batch[1]) == len(batch[0]) > 0):
            raise EvonasError(f"batch {i} must be a pair of tensors (images N x C x H x W, labels N)")
    if len(given) < count:
        raise EvonasError(f"this estimator needs {count} batches, got {len(given)}")
    return [(images.to(device), labels.to(device)) for images, labels in given[:count]]


def _copy(model: nn.Module, device: torch.device) -> nn.Module:
    clone = copy.deepcopy(model).to(device)
    return clone.train()


def _evaluate(estimator: Estimator, model: nn.Module, batches: Sequence[Batch], device: torch.device
              ) -> EstimatorResult:
    """The estimator's result on a copy of ``model``; a model that cannot run on the images fails with why."""
    start = time.perf_counter()
    try:
        return estimator.evaluate(_copy(model, device), batches)
    except EvonasError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a forward that rejects the images, or out of memory twice
        return EstimatorResult(None, time.perf_counter() - start, "failed", f"{type(exc).__name__}: {exc}")


def score_model(
    model: nn.Module, estimator: str = "sweet", *, data: Data | None = None, batches: Iterable[Batch] | None = None,
    interval: tuple[float, float] | None = None, batch_size: int = 64, seed: int = 0,
    settings: dict[str, Any] | None = None, device: str | torch.device = "cpu", data_dir: str | None = None,
) -> ModelScore:
    """``estimator``'s score of ``model`` (a copy; see the module docstring).

    User mistakes (an unknown estimator, a Sweet-family estimator without ``interval``, a
    composite without ``settings["normalisation"]``, bad batches) raise a one-line
    ``EvonasError``; a model that fails on the images, or a NaN score, is a failed result.
    """
    _check_model(model)
    settings = dict(settings or {})
    if interval is None and "interval" in settings:  # the recorded settings of an earlier score, given back
        interval = settings.pop("interval")
    recorded = resolve_estimator_settings(estimator, interval=interval, estimator_settings=settings,
                                          find_interval=_no_interval(estimator),
                                          find_normalisation=_no_normalisation(estimator))
    est = make_estimator(estimator, recorded)
    dev = torch.device(device)
    inputs = model_batches(data, batches, batch_size, seed, est.num_batches, dev, data_dir)
    with seeded_rng(seed, dev):
        result = _evaluate(est, model, inputs, dev)
    return ModelScore(result.score, result.status, result.error, result.seconds, est.name, recorded,
                      dict(result.extra))


def default_depth_units(model: nn.Module) -> list[nn.Module]:
    """The model's top-level children that hold Conv2d/Linear weights, less the first and the last.

    Calibration follows how a gradient bin's share of weights changes from one block to the next
    along the depth; the first and last such children are usually the stem and the classifier,
    which DESIGN.md leaves out, as the spaces do (they differ in kind, not in depth).
    """
    weighted = [child for child in model.children()
                if any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in child.modules())]
    return weighted[1:-1]


def _units_of(depth_units: DepthUnits | None) -> Callable[[nn.Module], list[nn.Module]]:
    if depth_units is None:
        return default_depth_units
    if callable(depth_units):
        return lambda model: list(depth_units(model))
    if isinstance(depth_units, (list, tuple)) and depth_units and all(isinstance(n, str) for n in depth_units):
        def by_name(model: nn.Module) -> list[nn.Module]:
            try:
                return [model.get_submodule(name) for name in depth_units]
            except AttributeError as exc:
                raise EvonasError(f"depth_units: {exc}") from None
        return by_name
    raise EvonasError("depth_units= must be a function (model -> list of modules) or a list of submodule names, "
                      "like ['layer1', 'layer2', 'layer3']")


def calibrate_models(
    models: Iterable[nn.Module], *, data: Data | None = None, batches: Iterable[Batch] | None = None,
    batch_size: int = 64, seed: int = 0, depth_units: DepthUnits | None = None,
    device: str | torch.device = "cpu", data_dir: str | None = None,
) -> CalibrationResult:
    """The Sweetimator interval, every bin's mean depth trend and each model's trends, on the user's models.

    The same algorithm as a space's calibration (``estimators.sweet.calibrate``) on one fixed
    batch; ``depth_units`` gets each model (a copy) and says which of its modules are the depth
    units, in forward order (default ``default_depth_units``).
    """
    sample = [_check_model(m) for m in models]
    if not sample:
        raise EvonasError("calibration needs at least one model")
    units_of = _units_of(depth_units)
    dev = torch.device(device)
    [batch] = model_batches(data, batches, batch_size, seed, 1, dev, data_dir)
    current = 0

    def networks() -> Iterator[tuple[nn.Module, list[nn.Module]]]:
        nonlocal current
        for current, model in enumerate(sample):
            clone = _copy(model, dev)
            units = units_of(clone)
            if len(units) < 2:
                raise EvonasError(f"model {current} ({type(model).__name__}) has {len(units)} depth units; "
                                  "calibration needs at least two: pass depth_units=")
            yield clone, units

    with seeded_rng(seed, dev):
        try:
            return calibrate(networks(), batch)
        except (EstimatorError, RuntimeError, ValueError, TypeError) as exc:
            raise EvonasError(f"calibration failed on model {current} ({type(sample[current]).__name__}): "
                              f"{type(exc).__name__}: {exc}") from None


def composite_normalisation(
    models: Iterable[nn.Module], estimator: str, *, data: Data | None = None,
    batches: Iterable[Batch] | None = None, interval: tuple[float, float] | None = None, batch_size: int = 64,
    seed: int = 0, settings: dict[str, Any] | None = None, device: str | torch.device = "cpu",
    data_dir: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Each part's normalisation of composite ``estimator``, measured on a sample of models.

    What a space's calibration sample gives a composite in a search, for models of your own:
    pass the result as ``normalisation=`` to ``score``. Each part's score of a model here is
    its ``score_model`` score alone (same batches, same seed).
    """
    cls = estimator_class(estimator)
    if not issubclass(cls, Composite):
        raise EvonasError(f"{estimator!r} is not a composite; join estimators with +, like sweet_ntk+jacov")
    sample = [_check_model(m) for m in models]
    dev = torch.device(device)

    def measure(parts: dict[str, dict[str, Any]]) -> tuple[dict[str, Normalisation], dict[str, Any]]:
        probe = cls(**composite_settings([Part(name, weight, parts[name]) for name, weight in cls.parts], {}))
        inputs = model_batches(data, batches, batch_size, seed, probe.num_batches, dev, data_dir)
        scores: dict[str, list[float | None]] = {name: [] for name in cls.names}
        for model in sample:
            with seeded_rng(seed, dev):
                results = probe.part_results(_copy(model, dev), inputs)
            for name in cls.names:
                scores[name].append(results[name].score if results[name].ok else None)
        return ({name: Normalisation.from_scores(name, scores[name]) for name in cls.names},
                {"sample": "models", "num_models": len(sample), "seed": seed})

    recorded = resolve_estimator_settings(estimator, interval=interval, estimator_settings=settings,
                                          find_interval=_no_interval(estimator), find_normalisation=measure)
    return {part["name"]: part["normalisation"] for part in recorded["parts"]}
