"""Datasets (CIFAR-10/100, ImageNet16-120, synthetic), their download, and batched augmentation.

A split is one uint8 tensor in memory (``ImageDataset``); ``load_dataset`` finds it under
``data_dir`` / ``$EVONAS_DATA`` / the per-user cache folder, downloads CIFAR when absent
(checksum-verified), and caches the decoded tensors in-process. ``augment``,
``sample_batch`` and ``iterate_batches`` turn it into normalised float32 batches with
tensor ops seeded by a ``torch.Generator``.
"""
from evonas.data.augment import augment, iterate_batches, normalize, sample_batch
from evonas.data.dataset import ImageDataset
from evonas.data.sources import (
    DATASETS,
    ENV_DATA,
    DataWarning,
    cache_dir,
    clear_cache,
    load_dataset,
    resolve_data_dir,
    synthetic,
)

__all__ = [
    "DATASETS",
    "ENV_DATA",
    "DataWarning",
    "ImageDataset",
    "augment",
    "cache_dir",
    "clear_cache",
    "iterate_batches",
    "load_dataset",
    "normalize",
    "resolve_data_dir",
    "sample_batch",
    "synthetic",
]
