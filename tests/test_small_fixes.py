"""Small fixes found during the re-layer: ImageNet16 crop padding, training precision on resume."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evonas.data import ImageDataset, iterate_batches, load_dataset
from evonas.errors import EvonasError
import search_spaces
from evonas.recipes import resolve_recipe
from evonas.training import train_genotype
from evonas.training.genotype import CHECKPOINT
from evonas.training.trainer import NullProgress, Trainer
from test_data import write_pickle

GENO = "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
TINY = {"epochs": 1, "batch_size": 16, "channels": 4, "layers": 1, "train_images": 16, "test_images": 16,
        "dataset": "synthetic"}


def _largest_crop_shift(dataset: ImageDataset, draws: int = 400) -> int:
    """The largest vertical shift of a single bright pixel under the training augmentation (flips are horizontal)."""
    images = torch.zeros(1, 3, dataset.resolution, dataset.resolution, dtype=torch.uint8)
    centre = dataset.resolution // 2
    images[0, :, centre, centre] = 255
    one = ImageDataset(dataset.name, images, torch.zeros(1, dtype=torch.long), 10, dataset.mean, dataset.std,
                       crop_padding=dataset.crop_padding)
    gen = torch.Generator().manual_seed(0)
    shift = 0
    for _ in range(draws):
        (x, _), = iterate_batches(one, 1, gen, shuffle=False, augment=True)
        row = int(x[0, 0].argmax()) // dataset.resolution
        shift = max(shift, abs(row - centre))
    return shift


def test_imagenet16_training_crop_pads_by_2_cifar_by_4(tmp_path: Path) -> None:
    """NB-201 pads ImageNet16-120 training crops by 2 pixels and CIFAR's by 4."""
    rng = np.random.default_rng(0)
    for name in ("train_data_batch_1", "val_data"):
        write_pickle(tmp_path / "ImageNet16" / name,
                     {"data": rng.integers(0, 256, (8, 768), dtype=np.uint8), "labels": [1] * 8})
    with pytest.warns(UserWarning):
        imagenet = load_dataset("imagenet16-120", data_dir=tmp_path, download=False)
    assert _largest_crop_shift(imagenet) == 2
    assert _largest_crop_shift(load_dataset("synthetic")) == 4


class _StopAfterFirstEpoch(NullProgress):
    def epoch_end(self, metrics: dict) -> None:
        raise KeyboardInterrupt


def test_checkpoint_records_precision_and_another_precision_is_refused(tmp_path: Path) -> None:
    two_epochs = {**TINY, "epochs": 2}
    with pytest.raises(KeyboardInterrupt):  # stopped after epoch 1 of 2, its checkpoint saved
        train_genotype("nb201", GENO, tmp_path, two_epochs, device="cpu", progress=_StopAfterFirstEpoch())
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert (state["epoch"], state["precision"]) == (1, "fp32")
    state["precision"] = "bf16"  # as written by a GPU training
    torch.save(state, tmp_path / CHECKPOINT)
    with pytest.raises(EvonasError, match="trained in bf16 but this device trains in fp32"):
        train_genotype("nb201", GENO, tmp_path, two_epochs, resume=True, device="cpu")


def test_fp16_resume_without_scaler_state_is_a_clear_error(tmp_path: Path) -> None:
    recipe = resolve_recipe(search_spaces.get("nb201"), TINY)
    model = torch.nn.Linear(2, 2)
    state = {**Trainer(model, recipe, torch.device("cpu")).state_dict(), "precision": "fp16", "scaler": {}}
    fp16 = Trainer(torch.nn.Linear(2, 2), recipe, torch.device("cpu"))
    fp16.amp, fp16.scaler = torch.float16, torch.amp.GradScaler("cpu", enabled=True)  # what a CUDA fp16 run has
    with pytest.raises(EvonasError, match="no fp16 grad-scaler state"):
        fp16.load_state_dict(state, tmp_path / CHECKPOINT)
