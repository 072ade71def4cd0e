"""The Sweetimator interval of a (space, dataset): calibrated once without training, then cached.

The interval depends on the space, the dataset (classes, resolution), the batch size and
the calibration sample, so it is computed once per such combination with
``estimators.sweet.calibrate`` and kept in a small JSON file (``$EVONAS_CACHE`` or the
per-user cache folder). Models and the batch are made exactly as ``Scorer`` makes them
(same seeded init, same first fixed batch), so calibration sees what scoring sees.
The same file keeps each estimator's scores on the calibration sample (``reference_scores``),
from which a composite's fixed normalisation is computed. Every key holds a fingerprint of the
code involved (the estimators, the calibration, the space), so an edited estimator misses the
cache instead of reusing a stale interval, and the file is updated under a lock
(``cache_file``), so processes calibrating at once keep each other's entries.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

import estimators
import search_spaces
from estimators.sweet import CalibrationResult, calibrate
from evonas.data import ImageDataset, load_dataset
from evonas.errors import EvonasError
from evonas.scoring.cache_file import add_entries, read_entries
from evonas.scoring.composite import Part, composite_settings
from evonas.scoring.fingerprint import code_fingerprint
from evonas.scoring.scorer import Scorer, build_model, fixed_batches, seeded_rng
from evonas.seeding import calibration_sample_seed, init_seed
from evonas.settings import DEFAULT_CALIBRATION_ARCHS, ScoringSettings

CACHE_FILE = "calibration.json"

Progress = Callable[[int, int], None]


def calibration_archs(space: str, num_archs: int, seed: int) -> list[str]:
    """The space's first ``num_archs`` cells in benchmark order (NB-201), else seeded samples."""
    if num_archs < 1:
        raise EvonasError(f"calibration needs at least 1 architecture, got {num_archs}")
    impl = search_spaces.get(space)
    order = impl.benchmark_order()
    if order is not None:
        if num_archs > len(order):
            raise EvonasError(f"{space} has {len(order)} cells; ask for at most that many calibration archs")
        return order[:num_archs]
    rng = random.Random(calibration_sample_seed(seed, space))
    return [impl.to_str(impl.sample(rng)) for _ in range(num_archs)]


def cache_path() -> Path:
    """``$EVONAS_CACHE/calibration.json``, else under ``$XDG_CACHE_HOME/evonas`` or ``~/.cache/evonas``."""
    root = os.environ.get("EVONAS_CACHE")
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "evonas")
    return Path(root) / CACHE_FILE


@dataclass
class Calibration:
    """A calibration result with what it was computed from, and whether it came from the cache."""

    key: str
    settings: dict[str, Any]
    result: CalibrationResult
    cached: bool = False

    @property
    def interval(self) -> tuple[float, float]:
        return self.result.interval


def _networks(space: str, archs: list[str], num_classes: int, seed: int, device: torch.device
              ) -> Iterator[tuple[torch.nn.Module, list[torch.nn.Module]]]:
    """Each calibration model with the weights ``Scorer`` would give it, built only when needed."""
    impl = search_spaces.get(space)
    options = impl.proxy_options()
    for arch in archs:
        graph = impl.from_str(arch)
        with seeded_rng(init_seed(seed, impl.canonical_key(graph)), device):
            model = build_model(impl, graph, num_classes, options, device)
        yield model, impl.depth_units(model)


def _sample_settings(space: str, data: ImageDataset, batch_size: int, num_archs: int, seed: int,
                     build_options: dict[str, Any], code: str) -> dict[str, Any]:
    """What a result computed on the calibration sample depends on (its cache key); ``code`` is
    the ``code_fingerprint`` of the estimator code involved."""
    return {
        "space": space, "dataset": data.name, "synthetic": data.synthetic, "train_images": len(data),
        "batch_size": batch_size, "num_classes": data.num_classes, "resolution": data.resolution,
        "num_archs": num_archs, "seed": seed, "build_options": build_options, "code": code,
    }


def calibration_for(
    space: str,
    dataset: str = "cifar10",
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    seed: int = 0,
    num_archs: int = DEFAULT_CALIBRATION_ARCHS,
    progress: Progress | None = None,
    use_cache: bool = True,
    device: str | torch.device = "cpu",
    data: ImageDataset | None = None,
) -> Calibration:
    """The calibration of (space, dataset, batch size, ...), from the cache or computed and cached.

    ``use_cache=False`` recomputes and stores the fresh result. ``progress(done, total)``
    is called after each network. ``data`` is the training split when the caller has it loaded.
    """
    if batch_size < 1:
        raise EvonasError(f"batch size must be at least 1, got {batch_size}")
    impl = search_spaces.get(space)
    data = data or load_dataset(dataset, split="train", data_dir=data_dir)
    settings = _sample_settings(space, data, batch_size, num_archs, seed, impl.proxy_options(),
                                code_fingerprint(calibrate, type(impl)))
    key = json.dumps(settings, sort_keys=True)
    path = cache_path()
    if use_cache:
        entry = read_entries(path).get(key)
        if isinstance(entry, dict) and "result" in entry:
            return Calibration(key, settings, CalibrationResult.from_dict(entry["result"]), cached=True)
    archs = calibration_archs(space, num_archs, seed)
    device = torch.device(device)
    [batch] = fixed_batches(data, batch_size, 1, seed, device=device)
    result = calibrate(
        _networks(space, archs, data.num_classes, seed, device), batch,
        progress=None if progress is None else (lambda done: progress(done, len(archs))),
    )
    add_entries(path, {key: {"settings": settings, "result": result.to_dict()}})
    return Calibration(key, settings, result)


def reference_scores(
    space: str,
    parts: dict[str, dict[str, Any]],
    dataset: str = "cifar10",
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    seed: int = 0,
    build_options: dict[str, Any] | None = None,
    num_archs: int = DEFAULT_CALIBRATION_ARCHS,
    progress: Progress | None = None,
    data: ImageDataset | None = None,
) -> dict[str, list[float | None]]:
    """Each estimator's scores (None: failed) on the calibration sample, from the cache or computed.

    ``parts`` maps estimator names to their resolved settings; a score here is exactly the
    one ``Scorer`` gives that cell with the same settings (fixed batch policy). Estimators
    missing from the cache are scored together, so the Sweetimator variants share passes.
    """
    impl = search_spaces.get(space)
    data = data or load_dataset(dataset, split="train", data_dir=data_dir)
    build = impl.proxy_options() if build_options is None else dict(build_options)
    registry = estimators.available()
    keys = {name: json.dumps({**_sample_settings(space, data, batch_size, num_archs, seed, build,
                                                 code_fingerprint(registry[name], type(impl))),
                              "estimator": name, "estimator_settings": settings}, sort_keys=True)
            for name, settings in parts.items()}
    path = cache_path()
    cache = read_entries(path)
    found = {name: cache[key]["scores"] for name, key in keys.items()
             if isinstance(cache.get(key), dict) and isinstance(cache[key].get("scores"), list)}
    missing = [name for name in parts if name not in found]
    if missing:
        if len(missing) == 1:
            [name] = missing
            config = ScoringSettings(space, name, parts[name], dataset, None, batch_size, "fixed", seed, build)
        else:
            members = [Part(name, 1.0, parts[name]) for name in missing]
            config = ScoringSettings(space, "+".join(missing), composite_settings(members, {}), dataset, None,
                                     batch_size, "fixed", seed, build)
        scorer = Scorer(config, dataset=data)
        archs = calibration_archs(space, num_archs, seed)
        scored: dict[str, list[float | None]] = {name: [] for name in missing}
        for done, arch in enumerate(archs, start=1):
            for name, res in scorer.score_parts(arch)[1].items():
                scored[name].append(res.score if res.ok else None)
            if progress is not None:
                progress(done, len(archs))
        add_entries(path, {keys[name]: {"settings": json.loads(keys[name]), "scores": scored[name]} for name in missing})
        found.update(scored)
    return {name: found[name] for name in parts}
