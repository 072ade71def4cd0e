"""Batched augmentation and batching as tensor ops (no per-image Python loop, GPU-friendly).

All random numbers come from the caller's ``torch.Generator`` (drawn on the generator's
device, then moved to the images' device), so the same generator seed gives the same
batches on CPU and GPU.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from evonas.data.dataset import ImageDataset
from evonas.errors import DataError


def normalize(images_u8: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """float32 ``(x / 255 - mean) / std`` per channel."""
    if images_u8.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images, got {images_u8.dtype}")
    std_t = torch.tensor(std, dtype=torch.float32, device=images_u8.device).view(-1, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=images_u8.device).view(-1, 1, 1)
    return torch.addcmul(-mean_t / std_t, images_u8.float(), 1.0 / (255.0 * std_t))


def augment(images_u8: torch.Tensor, mean: Sequence[float], std: Sequence[float],
            generator: torch.Generator, *, padding: int = 4, flip: bool = True,
            cutout: int = 0) -> torch.Tensor:
    """The standard CIFAR training transform on a whole batch; float32, normalised.

    Random crop after zero-padding each side by ``padding`` (i.e. a shift by -padding..padding
    with black fill), a horizontal flip with probability 1/2, normalisation, then, when
    ``cutout`` > 0, a ``cutout`` x ``cutout`` square set to 0 *after* normalisation as in the
    DARTS recipe; its centre is uniform over the image, so it is clipped at the borders.
    """
    if images_u8.dtype != torch.uint8 or images_u8.dim() != 4:
        raise TypeError(f"augment expects uint8 N x C x H x W images, got {images_u8.dtype} {tuple(images_u8.shape)}")
    n, c, h, w = images_u8.shape
    device = images_u8.device

    def draw(high: int) -> torch.Tensor:
        return torch.randint(0, high, (n,), generator=generator, device=generator.device).to(device)

    none = torch.zeros(n, dtype=torch.long, device=device)
    dy, dx = (draw(2 * padding + 1), draw(2 * padding + 1)) if padding else (none, none)
    flipped = draw(2).bool() if flip else none.bool()
    rows = torch.arange(h, device=device).expand(n, h) + dy.view(n, 1)
    cols = torch.arange(w, device=device).expand(n, w)
    cols = torch.where(flipped.view(n, 1), w - 1 - cols, cols) + dx.view(n, 1)
    padded = F.pad(images_u8, (padding,) * 4) if padding else images_u8
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, padded.shape[3]))
    out = out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))
    out = normalize(out, mean, std)
    if cutout > 0:
        top = draw(h).view(n, 1) - cutout // 2
        left = draw(w).view(n, 1) - cutout // 2
        r = torch.arange(h, device=device).view(1, h)
        k = torch.arange(w, device=device).view(1, w)
        in_rows = (r >= top) & (r < top + cutout)
        in_cols = (k >= left) & (k < left + cutout)
        out.masked_fill_((in_rows.view(n, h, 1) & in_cols.view(n, 1, w)).view(n, 1, h, w), 0.0)
    return out


def _batch(dataset: ImageDataset, idx: torch.Tensor, generator: torch.Generator | None,
           augmented: bool, cutout: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``idx`` of ``dataset`` on ``device``, augmented (train) or only normalised."""
    idx = idx.to(dataset.images.device)
    images = dataset.images[idx].to(device, non_blocking=True)
    labels = dataset.labels[idx].to(device, non_blocking=True)
    if augmented:
        return augment(images, dataset.mean, dataset.std, generator, padding=dataset.crop_padding,
                       cutout=cutout), labels
    return normalize(images, dataset.mean, dataset.std), labels


def sample_batch(dataset: ImageDataset, batch_size: int, generator: torch.Generator,
                 augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` distinct random images (train augmentation unless ``augment=False``)."""
    if not 0 < batch_size <= len(dataset):
        raise DataError(f"batch size {batch_size} does not fit {dataset.name} {dataset.split}, "
                        f"which has {len(dataset):,} images; use 1..{len(dataset):,}")
    idx = torch.randperm(len(dataset), generator=generator, device=generator.device)[:batch_size]
    return _batch(dataset, idx, generator, augment, 0, dataset.images.device)


def iterate_batches(dataset: ImageDataset, batch_size: int, generator: torch.Generator | None = None, *,
                    shuffle: bool = True, augment: bool = True, cutout: int = 0, drop_last: bool = False,
                    device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of batches on ``device``; ``generator`` drives the shuffle and the augmentation.

    Only the indexed batch travels to ``device``; call ``dataset.to(device)`` first to keep
    the whole split there.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    if generator is None and (shuffle or augment):
        raise ValueError("iterate_batches needs a torch.Generator to shuffle or augment")
    n = len(dataset)
    order = torch.randperm(n, generator=generator, device=generator.device) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield _batch(dataset, order[start:start + batch_size], generator, augment, cutout, device)
