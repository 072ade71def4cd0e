"""Genotype string -> model -> estimator -> result; the one scoring path every executor uses.

A ``Scorer`` loads its dataset once and keeps the fixed batches, so a worker turns
many genotype strings into scores without reloading anything.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

import estimators
import search_spaces
from estimators.base import Batch, EstimatorResult
from evonas.data import ImageDataset, load_dataset, sample_batch

BATCH_POLICIES = ("fixed", "fresh")


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed from any printable parts, identical across processes and runs."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass(frozen=True)
class ScoringConfig:
    """Everything that determines a score besides the genotype; recorded in every run."""

    space: str
    estimator: str
    estimator_settings: dict[str, Any] = field(default_factory=dict)
    dataset: str = "cifar10"
    data_dir: str | None = None
    batch_size: int = 64
    batch_policy: str = "fixed"
    seed: int = 0
    build_options: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scorer:
    """Scores genotype strings of one space with one estimator on one dataset."""

    def __init__(
        self, config: ScoringConfig, dataset: ImageDataset | None = None, device: str | torch.device = "cpu"
    ) -> None:
        if config.batch_policy not in BATCH_POLICIES:
            raise ValueError(f"batch policy must be one of {BATCH_POLICIES}, not {config.batch_policy!r}")
        self.config = config
        self.device = torch.device(device)
        self.space = search_spaces.get(config.space)
        self.estimator = estimators.get(config.estimator, **config.estimator_settings)
        self.dataset = dataset or load_dataset(config.dataset, split="train", data_dir=config.data_dir)
        self.build_options = dict(self.space.proxy_options() if config.build_options is None else config.build_options)
        self._fixed = self._draw(stable_seed(config.seed, "batches")) if config.batch_policy == "fixed" else None

    def _draw(self, seed: int) -> list[Batch]:
        gen = torch.Generator().manual_seed(seed)
        batches = [
            sample_batch(self.dataset, self.config.batch_size, gen, augment=True)
            for _ in range(self.estimator.num_batches)
        ]
        return [(images.to(self.device), labels.to(self.device)) for images, labels in batches]

    def batches(self, eval_id: int) -> list[Batch]:
        """The fixed batches, or fresh ones drawn from (seed, eval_id)."""
        if self._fixed is not None:
            return self._fixed
        return self._draw(stable_seed(self.config.seed, "batches", eval_id))

    def build(self, genotype: str) -> tuple[torch.nn.Module, str]:
        """The model for ``genotype`` with weights seeded by (seed, canonical key), and the key."""
        graph = self.space.from_str(genotype)
        key = self.space.canonical_key(graph)
        torch.manual_seed(stable_seed(self.config.seed, "init", key))
        model = self.space.build(graph, self.dataset.num_classes, **self.build_options)
        return model.to(self.device), key

    def score(self, genotype: str, eval_id: int = 0) -> EstimatorResult:
        """Score one genotype string; failures come back as a failed result, never raise."""
        model, key = self.build(genotype)
        model.train()
        result = self.estimator.evaluate(model, self.batches(eval_id), self.space.depth_units(model))
        result.extra["key"] = key
        return result
