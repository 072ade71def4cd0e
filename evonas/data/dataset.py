"""The in-memory dataset: one whole split as a single uint8 tensor plus its labels.

Keeping the split in one tensor lets augmentation run as batched tensor ops (on the GPU
when there is one) instead of per-image PIL transforms.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from evonas.errors import DataError


@dataclass(eq=False, repr=False)
class ImageDataset:
    """A whole split: ``images`` uint8 N x C x H x W, ``labels`` int64 N.

    ``mean``/``std`` are per channel on the 0..1 pixel scale. The tensors may be shared
    with an in-process cache (see ``load_dataset``): treat them as read-only.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    synthetic: bool = False
    split: str = "train"
    source: str = ""  # where the pixels came from (a folder, or the synthetic recipe)
    crop_padding: int = 4  # zero padding of the training random crop: 4 for 32x32, 2 for ImageNet16 (NB-201)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 N x C x H x W, got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be int64 with one per image, got {self.labels.dtype} {tuple(self.labels.shape)}")
        if not len(self.mean) == len(self.std) == self.images.shape[1]:
            raise ValueError("mean and std need one value per channel")
        self.images = self.images.contiguous()
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)

    @property
    def resolution(self) -> int:
        """Image height (CIFAR: 32, ImageNet16-120: 16)."""
        return int(self.images.shape[2])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        kind = ", synthetic" if self.synthetic else ""
        return f"ImageDataset({self.name} {self.split}: {len(self):,} images {c}x{h}x{w}, {self.num_classes} classes{kind})"

    def subset(self, n: int | slice | torch.Tensor) -> "ImageDataset":
        """The first ``n`` images, a slice, or the images at an index/bool-mask tensor."""
        if isinstance(n, bool) or not isinstance(n, (int, slice, torch.Tensor)):
            raise TypeError(f"subset takes an int, a slice or a tensor, not {type(n).__name__}")
        if isinstance(n, int):
            if not 0 < n <= len(self):
                raise DataError(f"cannot take {n:,} images from {self.name} {self.split}, which has {len(self):,}; ask for 1..{len(self):,}")
            n = slice(0, n)
        if isinstance(n, torch.Tensor):
            n = n.to(self.images.device)
        return replace(self, images=self.images[n], labels=self.labels[n])

    def to(self, device: torch.device | str) -> "ImageDataset":
        """This dataset with its tensors on ``device`` (itself when already there)."""
        device = torch.device(device)
        if self.images.device == device or (device.index is None and self.images.device.type == device.type):
            return self
        return replace(self, images=self.images.to(device), labels=self.labels.to(device))
