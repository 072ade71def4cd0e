"""Genotype string -> seeded model -> estimator -> result; the one scoring path every executor uses.

A ``Scorer`` loads its dataset once and keeps the fixed batches, so a worker turns many
genotype strings into scores without reloading anything. Weights are seeded per cell
inside a forked torch RNG, so scoring never changes the caller's global random state.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import networkx as nx
import torch

import estimators
import search_spaces
from estimators.base import Batch, EstimatorResult
from evonas.data import ImageDataset, load_dataset, sample_batch
from evonas.seeding import batches_seed, init_seed
from evonas.settings import ScoringSettings, check_batch_policy
from search_spaces.base import SearchSpace


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block on torch's RNG seeded with ``seed``; the caller's RNG state comes back afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def build_model(space: SearchSpace, graph: nx.DiGraph, num_classes: int, options: dict[str, Any],
                device: torch.device) -> torch.nn.Module:
    """The network of ``graph`` on ``device`` (weights come from torch's current RNG)."""
    return space.build(graph, num_classes, **options).to(device)


def fixed_batches(dataset: ImageDataset, batch_size: int, count: int, seed: int, eval_id: int | None = None,
                  device: torch.device = torch.device("cpu")) -> list[Batch]:
    """``count`` augmented batches drawn from the named batch seed (see ``evonas.seeding``)."""
    gen = torch.Generator().manual_seed(batches_seed(seed, eval_id))
    batches = [sample_batch(dataset, batch_size, gen, augment=True) for _ in range(count)]
    return [(images.to(device), labels.to(device)) for images, labels in batches]


class Scorer:
    """Scores genotype strings of one space with one estimator on one dataset."""

    def __init__(
        self, config: ScoringSettings, dataset: ImageDataset | None = None, device: str | torch.device = "cpu"
    ) -> None:
        check_batch_policy(config.batch_policy)
        self.config = config
        self.device = torch.device(device)
        self.space = search_spaces.get(config.space)
        self.estimator = estimators.get(config.estimator, **config.estimator_settings)
        self.dataset = dataset or load_dataset(config.dataset, split="train", data_dir=config.data_dir)
        self.build_options = dict(self.space.proxy_options() if config.build_options is None else config.build_options)
        self._fixed = self._draw(None) if config.batch_policy == "fixed" else None

    def _draw(self, eval_id: int | None) -> list[Batch]:
        return fixed_batches(self.dataset, self.config.batch_size, self.estimator.num_batches, self.config.seed,
                             eval_id, self.device)

    def batches(self, eval_id: int) -> list[Batch]:
        """The fixed batches, or fresh ones drawn from (seed, eval_id)."""
        return self._fixed if self._fixed is not None else self._draw(eval_id)

    def build(self, genotype: str) -> tuple[torch.nn.Module, str]:
        """The model ``score`` would score for ``genotype`` (same seeded weights), and its key."""
        graph = self.space.from_str(genotype)
        key = self.space.canonical_key(graph)
        with seeded_rng(init_seed(self.config.seed, key), self.device):
            return build_model(self.space, graph, self.dataset.num_classes, self.build_options, self.device), key

    def score(self, genotype: str, eval_id: int = 0) -> EstimatorResult:
        """Score one genotype string; failures come back as a failed result, never raise.

        The estimator runs on the same seeded RNG stream as the weight init, so an
        estimator that draws random numbers (zen's perturbation) is reproducible too.
        """
        graph = self.space.from_str(genotype)
        key = self.space.canonical_key(graph)
        with seeded_rng(init_seed(self.config.seed, key), self.device):
            model = build_model(self.space, graph, self.dataset.num_classes, self.build_options, self.device)
            model.train()
            result = self.estimator.evaluate(model, self.batches(eval_id), self.space.depth_units(model))
        result.extra["key"] = key
        return result
