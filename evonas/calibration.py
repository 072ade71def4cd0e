"""The Sweetimator interval of a (space, dataset): calibrated once without training, then cached.

The interval depends on the space, the dataset (classes, resolution), the batch size and
the calibration sample, so it is computed once per such combination with
``estimators.sweet.calibrate`` and kept in a small JSON file (``$EVONAS_CACHE`` or the
per-user cache folder). Models and the batch are made exactly as ``evonas.scoring.Scorer``
makes them (same seeded init, same first fixed batch), so calibration sees what scoring sees.
"""
from __future__ import annotations

import itertools
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

import search_spaces
from estimators.base import Batch, EstimatorError
from estimators.sweet import CalibrationResult, calibrate, check_interval
from evonas.data import ImageDataset, load_dataset, sample_batch
from evonas.errors import EvonasError
from evonas.scoring import stable_seed

CACHE_FILE = "calibration.json"
#: The benchmark enumerated its cells as the product of these ops over the 6 edges (first edge
#: slowest) and shuffled that list with ``random.Random(88)``: that is its index order.
NB201_BENCHMARK_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_BENCHMARK_SHUFFLE_SEED = 88
_NB201_FORMAT = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|"

Progress = Callable[[int, int], None]


def nb201_benchmark_order() -> list[str]:
    """Every NB-201 genotype string, position = the benchmark's own index."""
    cells = [_NB201_FORMAT.format(*ops) for ops in itertools.product(NB201_BENCHMARK_OPS, repeat=6)]
    random.Random(NB201_BENCHMARK_SHUFFLE_SEED).shuffle(cells)
    return cells


def calibration_archs(space: str, num_archs: int, seed: int) -> list[str]:
    """NB-201: the first ``num_archs`` cells in benchmark order; other spaces: seeded samples."""
    if num_archs < 1:
        raise EvonasError(f"calibration needs at least 1 architecture, got {num_archs}")
    if space == "nb201":
        order = nb201_benchmark_order()
        if num_archs > len(order):
            raise EvonasError(f"NB-201 has {len(order)} cells; ask for at most that many calibration archs")
        return order[:num_archs]
    impl = search_spaces.get(space)
    rng = random.Random(stable_seed(seed, "calibration", space))
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


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, unreadable or corrupt: recompute rather than fail
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, key: str, entry: dict[str, Any]) -> None:
    """Add one entry, atomically (write a sibling file, then rename over the old one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache(path)
        data[key] = entry
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as exc:
        raise EvonasError(f"cannot write the calibration cache {path}: {exc}; set EVONAS_CACHE to a writable folder") from exc


def calibration_batch(data: ImageDataset, batch_size: int, seed: int) -> Batch:
    """The fixed batch: the first one a ``Scorer`` with the same seed scores with."""
    gen = torch.Generator().manual_seed(stable_seed(seed, "batches"))
    return sample_batch(data, batch_size, gen, augment=True)


def _networks(space: str, archs: list[str], num_classes: int, seed: int, device: torch.device
              ) -> Iterator[tuple[torch.nn.Module, list[torch.nn.Module]]]:
    """Each calibration model with the weights ``Scorer`` would give it, built only when needed."""
    impl = search_spaces.get(space)
    options = impl.proxy_options()
    for arch in archs:
        graph = impl.from_str(arch)
        torch.manual_seed(stable_seed(seed, "init", impl.canonical_key(graph)))
        model = impl.build(graph, num_classes, **options).to(device)
        yield model, impl.depth_units(model)


def calibration_for(
    space: str,
    dataset: str = "cifar10",
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    seed: int = 0,
    num_archs: int = 100,
    progress: Progress | None = None,
    use_cache: bool = True,
    device: str | torch.device = "cpu",
) -> Calibration:
    """The calibration of (space, dataset, batch size, ...), from the cache or computed and cached.

    ``use_cache=False`` recomputes and stores the fresh result. ``progress(done, total)``
    is called after each network.
    """
    if batch_size < 1:
        raise EvonasError(f"batch size must be at least 1, got {batch_size}")
    impl = search_spaces.get(space)
    data = load_dataset(dataset, split="train", data_dir=data_dir)
    settings = {
        "space": space, "dataset": data.name, "synthetic": data.synthetic, "train_images": len(data),
        "batch_size": batch_size, "num_classes": data.num_classes, "resolution": data.resolution,
        "num_archs": num_archs, "seed": seed, "build_options": impl.proxy_options(),
    }
    key = json.dumps(settings, sort_keys=True)
    path = cache_path()
    if use_cache:
        entry = _read_cache(path).get(key)
        if isinstance(entry, dict) and "result" in entry:
            return Calibration(key, settings, CalibrationResult.from_dict(entry["result"]), cached=True)
    archs = calibration_archs(space, num_archs, seed)
    images, labels = calibration_batch(data, batch_size, seed)
    device = torch.device(device)
    result = calibrate(
        _networks(space, archs, data.num_classes, seed, device),
        (images.to(device), labels.to(device)),
        progress=None if progress is None else (lambda done: progress(done, len(archs))),
    )
    _write_cache(path, key, {"settings": settings, "result": result.to_dict()})
    return Calibration(key, settings, result)


def resolve_interval(
    space: str,
    dataset: str = "cifar10",
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    seed: int = 0,
    override: tuple[float, float] | None = None,
    num_archs: int = 100,
    progress: Progress | None = None,
) -> tuple[float, float]:
    """The Sweetimator interval to use: ``override`` when given, else the cached calibration."""
    if override is not None:
        try:
            return check_interval(override, "--interval")
        except EstimatorError as exc:
            raise EvonasError(str(exc)) from None
    return calibration_for(space, dataset, data_dir, batch_size, seed, num_archs, progress).interval
