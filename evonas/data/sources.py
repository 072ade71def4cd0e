"""Where datasets come from: the data folder, the pickled batch files, downloads, synthetic data.

The data folder is ``data_dir`` (the CLI's ``--data-dir``), else ``$EVONAS_DATA``, else the
per-user cache folder. Decoded splits are cached in-process, so every ``load_dataset`` call
after the first in one process costs nothing.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evonas.data.dataset import ImageDataset
from evonas.data.download import DownloadError, fetch_folder
from evonas.data.pickles import bad_file, images_and_labels, read_batch
from evonas.errors import DataError

ENV_DATA = "EVONAS_DATA"
SPLITS = ("train", "test")
FIX_FLAGS = f"pass --data-dir DIR or set {ENV_DATA}=DIR"


class DataWarning(UserWarning):
    """Data was found but is incomplete (e.g. some CIFAR-10 training batches are missing)."""


@dataclass(frozen=True)
class PickledDataset:
    """A dataset stored as pickled batches (``data`` N x C*H*W uint8, labels) in one folder."""

    name: str
    title: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    num_classes: int
    resolution: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 4          # zero padding of the training random crop (NB-201's recipe)
    label_offset: int = 0          # subtracted from the stored labels (ImageNet16: 1-based)
    first_classes_only: bool = False  # keep labels < num_classes instead of rejecting others
    url: str | None = None         # official archive holding ``folder/``; None: no download
    md5: str | None = None
    env: str = ""                  # prefix of the URL/checksum override variables

    def remedy(self, folder: Path) -> str:
        """What to do about a bad or missing file in ``folder``."""
        if self.url:
            return f"delete {folder} so evonas downloads a fresh copy, or restore the original file"
        return f"restore the original file of the NAS-Bench-201 {self.folder}/ download in {folder}"


CIFAR10 = PickledDataset(
    "cifar10", "CIFAR-10", "cifar-10-batches-py",
    tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels", 10, 32,
    mean=(0.49139968, 0.48215827, 0.44653124), std=(0.24703233, 0.24348505, 0.26158768),
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a", env="EVONAS_CIFAR10",
)
CIFAR100 = PickledDataset(
    "cifar100", "CIFAR-100", "cifar-100-python", ("train",), ("test",), "fine_labels", 100, 32,
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85", env="EVONAS_CIFAR100",
)
# NAS-Bench-201's down-sampled ImageNet: classes 1..120 of the 1,000, 16x16 pixels.
IMAGENET16_120 = PickledDataset(
    "imagenet16-120", "ImageNet16-120", "ImageNet16",
    tuple(f"train_data_batch_{i}" for i in range(1, 11)), ("val_data",), "labels", 120, 16,
    mean=tuple(x / 255 for x in (122.68, 116.66, 104.01)), std=tuple(x / 255 for x in (63.22, 61.26, 65.09)),
    crop_padding=2, label_offset=1, first_classes_only=True,
)
PICKLED = {spec.name: spec for spec in (CIFAR10, CIFAR100, IMAGENET16_120)}
DATASETS = (*PICKLED, "synthetic")

# Uniform uint8 pixels have mean 127.5 and std sqrt((256**2 - 1) / 12) on the 0..255 scale.
SYNTHETIC_MEAN = 127.5 / 255
SYNTHETIC_STD = ((256**2 - 1) / 12) ** 0.5 / 255
SYNTHETIC_DEFAULTS = {"num_images": 1024, "num_classes": 10, "resolution": 32, "seed": 0}

_cache: dict[tuple, ImageDataset] = {}


def cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/evonas/data`` or ``~/.cache/evonas/data``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "evonas" / "data"


def _data_root(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """The data folder and how it was chosen (for error messages)."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser(), "given by --data-dir"
    if os.environ.get(ENV_DATA):
        return Path(os.environ[ENV_DATA]).expanduser(), f"from ${ENV_DATA}"
    return cache_dir(), "the per-user cache folder"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir``, else ``$EVONAS_DATA``, else the per-user cache folder."""
    return _data_root(data_dir)[0]


def clear_cache() -> None:
    """Forget the decoded splits kept in this process."""
    _cache.clear()


def load_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                 download: bool = True, **options: Any) -> ImageDataset:
    """One whole split of ``name`` (cifar10, cifar100, imagenet16-120, synthetic).

    Options: CIFAR takes ``url``, ``md5``, ``sha256`` (the archive to download when the data
    folder lacks it; also ``EVONAS_CIFAR10_URL`` / ``_MD5`` / ``_SHA256`` and the same for
    CIFAR100); synthetic takes ``num_images``, ``num_classes``, ``resolution``, ``seed``.
    """
    key = name.lower()
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} for {key}; choose one of {', '.join(SPLITS)}")
    if key == "synthetic":
        _check_options(key, options, SYNTHETIC_DEFAULTS)
        return synthetic(split, **options)
    spec = PICKLED[key]
    _check_options(key, options, {"url": None, "md5": None, "sha256": None} if spec.url else {})
    folder = _find_folder(spec, data_dir, download, **options)
    return _load_pickled(spec, split, folder)


def _check_options(name: str, options: dict[str, Any], allowed: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = f"it takes {', '.join(allowed)}" if allowed else "it takes none"
        raise DataError(f"unknown option(s) {', '.join(unknown)} for dataset {name}; {takes}")


def _find_folder(spec: PickledDataset, data_dir: str | os.PathLike | None, download: bool,
                 url: str | None = None, md5: str | None = None, sha256: str | None = None) -> Path:
    """The folder holding ``spec``'s files, downloaded into the data folder when absent."""
    root, how = _data_root(data_dir)
    for folder in (root / spec.folder, root):
        if folder.name == spec.folder and folder.is_dir():
            return folder
    missing = f"{spec.title} not found: no {spec.folder}/ in {root} ({how})"
    if spec.url is None:
        raise DataError(f"{missing}; it cannot be downloaded automatically: put the NAS-Bench-201 "
                        f"{spec.folder}/ folder ({', '.join(spec.train_files[:1])}..{spec.train_files[-1]}, "
                        f"{', '.join(spec.test_files)}) in a folder DIR and {FIX_FLAGS}")
    if not download:
        raise DataError(f"{missing} and downloading is off; {FIX_FLAGS} to a folder that holds {spec.folder}/, "
                        f"or allow the download")
    url = url or os.environ.get(f"{spec.env}_URL") or spec.url
    md5 = md5 or os.environ.get(f"{spec.env}_MD5")
    sha256 = sha256 or os.environ.get(f"{spec.env}_SHA256")
    if not (md5 or sha256):
        md5 = spec.md5
    try:
        return fetch_folder(url, root, spec.folder, md5=md5, sha256=sha256)
    except DownloadError as exc:
        raise DataError(f"{missing}, and downloading {url} failed: {exc}; {FIX_FLAGS} to a folder "
                        f"that holds {spec.folder}/ (or set {spec.env}_URL and {spec.env}_MD5 to a mirror)") from None


def _split_files(spec: PickledDataset, split: str, folder: Path) -> tuple[list[Path], list[str]]:
    """The files of ``split`` present in ``folder`` and the names of the missing ones."""
    wanted = spec.train_files if split == "train" else spec.test_files
    present = [folder / f for f in wanted if (folder / f).is_file()]
    absent = [f for f in wanted if not (folder / f).is_file()]
    if not present or (split == "test" and absent):
        raise DataError(f"{spec.title} in {folder} is incomplete: {', '.join(absent)} missing; {spec.remedy(folder)}")
    return present, absent


def _load_pickled(spec: PickledDataset, split: str, folder: Path) -> ImageDataset:
    """The split from the in-process cache, or read (warning once when batches are missing)."""
    files, absent = _split_files(spec, split, folder)
    key = (spec.name, split, tuple((str(p.resolve()), *_stamp(p)) for p in files))
    if key not in _cache:
        if absent:
            warnings.warn(f"{spec.title}: {', '.join(absent)} missing in {folder}; using {len(files)} of "
                          f"{len(files) + len(absent)} training files", DataWarning, stacklevel=3)
        images, labels = _read_files(spec, files)
        _cache[key] = ImageDataset(spec.name, images, labels, spec.num_classes, spec.mean, spec.std,
                                   split=split, source=str(folder), crop_padding=spec.crop_padding)
    return replace(_cache[key])


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _read_files(spec: PickledDataset, files: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    fix = spec.remedy(files[0].parent)
    pixels = 3 * spec.resolution**2
    arrays, label_arrays = [], []
    for path in files:
        data, labels = images_and_labels(read_batch(path, fix), path, spec.label_key, pixels, fix)
        labels = labels - spec.label_offset
        valid = (labels >= 0) & (labels < spec.num_classes)
        if spec.first_classes_only:
            data, labels = data[valid], labels[valid]
        elif not valid.all():
            raise bad_file(path, f"labels outside 0..{spec.num_classes - 1}", fix)
        arrays.append(data)
        label_arrays.append(labels)
    data = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    images = torch.from_numpy(np.ascontiguousarray(data)).view(-1, 3, spec.resolution, spec.resolution)
    return images, torch.from_numpy(np.concatenate(label_arrays))


def synthetic(split: str = "train", num_images: int = 1024, num_classes: int = 10,
              resolution: int = 32, seed: int = 0) -> ImageDataset:
    """Uniform random pixels and labels for smoke runs; the same (seed, split) gives the same data."""
    for option, value, least in (("num_images", num_images, 1), ("num_classes", num_classes, 1),
                                 ("resolution", resolution, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise DataError(f"synthetic option {option} must be an integer >= {least}, not {value!r}")
    gen = torch.Generator().manual_seed(seed * len(SPLITS) + SPLITS.index(split))
    images = torch.randint(0, 256, (num_images, 3, resolution, resolution), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (num_images,), generator=gen)
    return ImageDataset("synthetic", images, labels, num_classes, (SYNTHETIC_MEAN,) * 3, (SYNTHETIC_STD,) * 3,
                        synthetic=True, split=split, source=f"synthetic seed={seed}")
