"""Behaviour pinned against evonas v0.1.0: the re-layer must not change a score, a history or a weight.

The golden values in ``tests/data`` were produced by the v0.1.0 code (before the re-layer)
with the exact settings below; the run folder was written by it and left as a kill -9 leaves
one (history past the checkpoint, a torn last line). ``train_v0_1_0_weights.pt`` holds the
weights the v0.1.0 code trained (commit b88c880^, one torch thread, as in this suite).

Everything discrete (genotypes, keys, parents, order, statuses) must match exactly. Scores,
losses and weights must match to float-rounding precision only: another CPU runs other
convolution kernels (AVX-512 against AVX2 ones sum in another order), which moves a Sweet count
by 1 in 70,000 and trained weights in the 6th digit, while any real change of behaviour (another
random stream, another pass) moves them by orders of magnitude more.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from cli_helpers import run_cli
from evonas.runs import RunRecord
from evonas.searching import resume_search, start_search
from evonas.settings import SearchSettings
from evonas.training import train_genotype

DATA = Path(__file__).parent / "data"
GOLDEN = json.loads((DATA / "golden_v0_1_0.json").read_text())
PINNED_FIELDS = ("id", "genotype", "key", "parent", "score", "status", "cache_hit")
#: Relative tolerance of a score or loss: float rounding across CPUs, far below any behaviour change.
ROUNDING = 1e-4


def _history(run: Path) -> list[dict]:
    return [{k: r[k] for k in PINNED_FIELDS} for r in RunRecord.open(run).read_history()]


def _assert_same_history(actual: list[dict], expected: list[dict]) -> None:
    """Every field equal, scores to ``ROUNDING``."""
    assert [{**r, "score": None} for r in actual] == [{**r, "score": None} for r in expected]
    assert [r["score"] for r in actual] == pytest.approx([r["score"] for r in expected], rel=ROUNDING)


def test_short_searches_reproduce_v0_1_0_histories(tmp_path: Path) -> None:
    for estimator, interval in (("sweet", (1e-4, 5e-4)), ("synflow", None)):
        settings = SearchSettings(space="nb201", estimator=estimator, budget=10, population=4, sample=2, seed=3,
                                  dataset="synthetic", batch_size=8, interval=interval, checkpoint_every=4, checkpoint_seconds=0)
        run = start_search(settings, run_dir=tmp_path / estimator)
        _assert_same_history(_history(run), GOLDEN[f"search_{estimator}"])


def test_short_training_reproduces_v0_1_0_weights(tmp_path: Path) -> None:
    result = train_genotype(
        "nb201", "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
        tmp_path, {"epochs": 2, "batch_size": 16, "channels": 4, "layers": 1, "train_images": 48,
                   "test_images": 32, "dataset": "synthetic"}, device="cpu")
    weights = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    golden = torch.load(DATA / "train_v0_1_0_weights.pt", weights_only=True)
    assert sorted(weights) == sorted(golden)
    for name, tensor in golden.items():
        torch.testing.assert_close(weights[name], tensor, rtol=ROUNDING, atol=1e-6, msg=name)
    assert result["train_loss"] == pytest.approx(GOLDEN["train"]["train_loss"], rel=ROUNDING)
    assert result["test_accuracy"] == GOLDEN["train"]["test_accuracy"]


def test_training_leaves_the_global_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_genotype("nb201", "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", tmp_path,
                   {"epochs": 1, "batch_size": 16, "channels": 4, "layers": 1, "train_images": 16,
                    "test_images": 16, "dataset": "synthetic"}, device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_a_killed_v0_1_0_run_shows_and_resumes_exactly(tmp_path: Path, monkeypatch, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(DATA / "run_v0_1_0_killed", run)
    code, out, err = run_cli(monkeypatch, capsys, "show", str(run))
    assert code == 0, err
    # ten complete lines (the torn eleventh is not counted) against the budget the run started with
    assert "stopped" in out and "10/8 evaluations" in out
    resume_search(run, {"budget": 14})
    expected = json.loads((DATA / "run_v0_1_0_resumed.json").read_text())
    _assert_same_history(_history(run), expected)
    assert len({r["id"] for r in expected}) == 14
