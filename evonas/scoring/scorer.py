"""Genotype string -> seeded model -> estimator -> result; the one scoring path every executor uses.

A ``Scorer`` loads its dataset once and keeps the fixed batches, so a worker turns many
genotype strings into scores without reloading anything. Weights are seeded per cell
inside a forked torch RNG, so scoring never changes the caller's global random state.
A composite's parts (``Composite.groups``) each get the cell's freshly seeded network, as if
scored alone, except that the parts reading the shared pass (the Sweetimator variants' weight
gradients, jacov's and epe_nas's input Jacobian) share one network and one forward pass.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

import networkx as nx
import torch

import search_spaces
from estimators.base import Batch, EstimatorResult
from evonas.data import ImageDataset, load_dataset, sample_batch
from evonas.scoring.composite import Composite, Group, make_estimator, run_groups
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
    """Scores genotype strings of one space with one estimator (or composite) on one dataset."""

    def __init__(
        self, config: ScoringSettings, dataset: ImageDataset | None = None, device: str | torch.device = "cpu"
    ) -> None:
        check_batch_policy(config.batch_policy)
        self.config = config
        self.device = torch.device(device)
        self.space = search_spaces.get(config.space)
        #: A single estimator or a ``Composite``; a composite's normalisation may be unset
        #: while the calibration sample is scored part by part (``score_parts``).
        self.estimator = make_estimator(config.estimator, config.estimator_settings)
        self.num_batches = self.estimator.num_batches
        self.dataset = dataset or load_dataset(config.dataset, split="train", data_dir=config.data_dir)
        self.build_options = dict(self.space.proxy_options() if config.build_options is None else config.build_options)
        self._fixed = self._draw(None) if config.batch_policy == "fixed" else None

    @property
    def groups(self) -> list[Group]:
        """The estimators that each run on one network: a composite's groups, or the single estimator."""
        if isinstance(self.estimator, Composite):
            return self.estimator.groups
        return [[(self.config.estimator, self.estimator)]]

    def _draw(self, eval_id: int | None) -> list[Batch]:
        return fixed_batches(self.dataset, self.config.batch_size, self.num_batches, self.config.seed,
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

    def score_parts(self, genotype: str, eval_id: int = 0) -> tuple[str, dict[str, EstimatorResult]]:
        """The canonical key and every estimator's own result, each as if it scored the cell alone.

        Each group of estimators runs on the cell's model built on a freshly seeded torch RNG
        stream, the stream the estimators then draw from too (zen's perturbation), so the
        results are reproducible; the shared-pass readers share one network and forward pass.
        """
        graph = self.space.from_str(genotype)
        key = self.space.canonical_key(graph)

        @contextlib.contextmanager
        def network() -> Iterator[tuple[torch.nn.Module, list[torch.nn.Module]]]:
            with seeded_rng(init_seed(self.config.seed, key), self.device):
                model = build_model(self.space, graph, self.dataset.num_classes, self.build_options, self.device)
                model.train()
                yield model, self.space.depth_units(model)

        return key, run_groups(self.groups, network, self.batches(eval_id))

    def score(self, genotype: str, eval_id: int = 0) -> EstimatorResult:
        """Score one genotype string; failures come back as a failed result. Only running out of
        memory again at half the batch raises (``Estimator.evaluate``), for the executor to retry."""
        start = time.perf_counter()
        key, results = self.score_parts(genotype, eval_id)
        if isinstance(self.estimator, Composite):
            result = self.estimator.combine(results, time.perf_counter() - start)
        else:
            [result] = results.values()
        result.extra["key"] = key
        return result

