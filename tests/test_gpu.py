"""The CUDA paths, for a machine with a GPU (``scripts/gpu_check.sh`` runs them; skipped elsewhere).

Scoring on the GPU must match scoring on the CPU (same seeded weights and batches; only float
rounding differs, e.g. TF32 convolutions, so counts near an interval edge may move a little);
mixed-precision training must run and resume; the GPU trainer uses channels-last.
"""
from __future__ import annotations

import pytest
import torch
from executor_helpers import genotypes
from scipy.stats import spearmanr

import search_spaces
from evonas.recipes import resolve_recipe
from evonas.scoring import Scorer
from evonas.settings import ScoringSettings
from evonas.training import train_genotype
from evonas.training.genotype import CHECKPOINT
from evonas.training.trainer import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here; run scripts/gpu_check.sh on a GPU"),
]
GENO = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
TINY = dict(epochs=2, batch_size=32, channels=4, layers=1, dataset="synthetic", train_images=80, test_images=48)
#: Relative score tolerance GPU vs CPU per estimator: the Sweet family counts/sums weights whose
#: |grad| falls in an interval, where rounding can move a few weights across an edge.
TOLERANCE = {"sweet": 0.03, "sweet_snip": 0.03, "sweet_ntk": 0.03, "synflow": 1e-3}


@pytest.mark.parametrize("estimator", sorted(TOLERANCE))
def test_scoring_on_cuda_matches_cpu(estimator):
    settings = {"interval": (1e-4, 5e-4)} if estimator.startswith("sweet") else {}
    config = ScoringSettings(space="nb201", estimator=estimator, estimator_settings=settings, dataset="synthetic",
                             batch_size=32, build_options={"channels": 8, "cells_per_stage": 2})
    cells = genotypes(10, seed=11)
    cpu, gpu = Scorer(config, device="cpu"), Scorer(config, device="cuda")
    on_cpu = [cpu.score(g, eval_id=i).score for i, g in enumerate(cells)]
    on_gpu = [gpu.score(g, eval_id=i).score for i, g in enumerate(cells)]
    for c, g in zip(on_cpu, on_gpu):
        assert g == pytest.approx(c, rel=TOLERANCE[estimator], abs=1e-12)
    assert spearmanr(on_cpu, on_gpu).statistic > 0.9  # the ranking, which is what the search uses


def test_mixed_precision_training_runs_and_resumes(tmp_path):
    straight = train_genotype("nb201", GENO, tmp_path / "a", TINY, device="cuda")
    assert straight["precision"] in ("bf16", "fp16") and straight["channels_last"]

    class StopAfterFirstEpoch:
        def start(self, *args) -> None: ...
        def epoch_start(self, *args) -> None: ...
        def batch_end(self) -> None: ...

        def epoch_end(self, metrics) -> None:
            if metrics["epoch"] == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_genotype("nb201", GENO, tmp_path / "b", TINY, device="cuda", progress=StopAfterFirstEpoch())
    assert (tmp_path / "b" / CHECKPOINT).is_file()
    resumed = train_genotype("nb201", GENO, tmp_path / "b", TINY, device="cuda", resume=True)
    assert resumed["precision"] == straight["precision"] and len(resumed["history"]) == 2
    assert abs(resumed["test_accuracy"] - straight["test_accuracy"]) <= 0.2  # AMP is not bit-exact


def test_gpu_trainer_is_channels_last_and_agrees_with_contiguous():
    space = search_spaces.get("nb201")
    recipe = resolve_recipe(search_spaces.get("nb201"), {"channels": 4, "layers": 1})
    torch.manual_seed(0)
    model = space.build(space.from_str(GENO), 10, **space.training_options(recipe.to_dict()))
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, recipe, torch.device("cuda"))
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    images, _ = trainer._prepare(torch.rand(8, 3, 32, 32), torch.zeros(8, dtype=torch.long))
    assert images.is_contiguous(memory_format=torch.channels_last)
    plain = space.build(space.from_str(GENO), 10, **space.training_options(recipe.to_dict())).cuda().eval()
    plain.load_state_dict(reference)
    trainer.model.eval()
    with torch.no_grad():
        assert torch.allclose(trainer.model(images), plain(images.contiguous()), rtol=1e-3, atol=1e-3)
