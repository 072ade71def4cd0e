"""Scores, calibration and composites for any nn.Module (evonas.score / calibrate / composite_normalisation),
and the retry at half the batch after running out of memory."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import estimators
import evonas
import search_spaces
from estimators.base import Estimator, EstimatorError
from evonas.data import load_dataset
from evonas.errors import EvonasError
from evonas.execution.base import attempt_job
from evonas.scoring import Scorer, calibration_archs, calibration_for, default_depth_units, fixed_batches
from evonas.scoring.composite import Normalisation, make_estimator, parse_composite
from evonas.searching import start_search
from evonas.settings import ScoringSettings, SearchSettings
from test_calibration import ToySpace

INTERVAL = (1e-4, 5e-4)


class Net(nn.Module):
    """A hand-written CNN: stem, two blocks, classifier."""

    def __init__(self, classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.block1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.block2 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.pool(self.block1(self.stem(x))))
        return self.head(x.mean(dim=(2, 3)))


def _net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


def _batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    [batch] = fixed_batches(load_dataset("synthetic"), n, 1, seed=0)
    return batch


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("EVONAS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ---- scoring a hand-written module ---------------------------------------------------
def test_sweet_counts_the_weights_with_gradients_in_the_interval(cache) -> None:
    model = _net().eval()
    before = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    images, labels = _batch()
    clone = copy.deepcopy(model).train()
    F.cross_entropy(clone(images), labels).backward()
    grads = torch.cat([m.weight.grad.abs().flatten() for m in clone.modules() if isinstance(m, (nn.Conv2d, nn.Linear))])
    interval = (0.0, grads.median().item())
    expected = int(((grads >= interval[0]) & (grads < interval[1])).sum())
    assert 0 < expected < grads.numel()

    result = evonas.score(model, "sweet", data="synthetic", batch_size=8, interval=interval)
    assert (result.status, result.reason, result.score) == ("ok", None, expected)
    assert result.settings == {"interval": list(interval)} and result.estimator == "sweet" and result.seconds > 0
    # the caller's model and random state are as they were: weights, BatchNorm statistics, mode, gradients
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_batches_and_data_give_the_same_score(cache) -> None:
    model = _net()
    from_data = evonas.score(model, "jacov", data=load_dataset("synthetic"), batch_size=8)
    from_batches = evonas.score(model, "jacov", batches=[_batch()])
    assert from_data.ok and from_data.score == from_batches.score
    assert evonas.score(model, "jacov", data="synthetic", batch_size=8, seed=1).score != from_data.score


@pytest.mark.parametrize("estimator, settings", [("sweet", {"interval": INTERVAL}), ("jacov", {}), ("synflow", {})])
def test_a_space_model_scores_as_the_search_scores_it(estimator, settings, cache) -> None:
    with search_spaces.registered(ToySpace):
        scorer = Scorer(ScoringSettings(ToySpace.name, estimator, settings, dataset="synthetic", batch_size=8))
        for genotype in ("conv-conv-pool", "pool-conv-conv"):
            model = scorer.build(genotype)[0]
            result = evonas.score(model, estimator, data="synthetic", batch_size=8, settings=settings)
            assert result.ok and result.score == scorer.score(genotype).score


@pytest.mark.parametrize("call, message", [
    (lambda m: evonas.score(m, "nope", data="synthetic"), "unknown estimator 'nope'"),
    (lambda m: evonas.score(m, "sweet", data="synthetic"), "pass interval=(lo, hi), or find it with evonas.calibrate"),
    (lambda m: evonas.score(m, "sweet_snip+jacov", data="synthetic"), "needs a gradient interval"),
    (lambda m: evonas.score(m, "params", data="synthetic", interval=INTERVAL), "only applies to the Sweetimator"),
    (lambda m: evonas.score(m, "sweet", data="synthetic", interval=(5e-4, 1e-4)), "0 <= lo < hi"),
    (lambda m: evonas.score("resnet", "params", data="synthetic"), "must be a torch.nn.Module"),
    (lambda m: evonas.score(m, "params"), "give the images as data="),
    (lambda m: evonas.score(m, "params", data="synthetic", batches=[_batch()]), "one of the two"),
    (lambda m: evonas.score(m, "zico", batches=[_batch()]), "needs 2 batches, got 1"),
    (lambda m: evonas.score(m, "params", batches=[torch.zeros(3)]), "batch 0 must be a pair of tensors"),
    (lambda m: evonas.score(m, "params", data="nope"), "unknown dataset 'nope'"),
    (lambda m: evonas.score(m, "params+jacov", data="synthetic"), "evonas.composite_normalisation"),
    (lambda m: evonas.score(m, "params+jacov", data="synthetic", normalisation={"params": {}}), "every part"),
])
def test_user_mistakes_are_one_line_errors(call, message, cache) -> None:
    with pytest.raises(EvonasError) as exc:
        call(_net())
    assert message in _one_line(exc)


class NanFake(Estimator):
    name = "fake_nan"
    needs_data = needs_labels = False

    def score(self, model, batches, depth_units=None):
        return math.nan


def test_a_model_that_cannot_score_is_a_failed_result_with_the_reason(cache) -> None:
    wrong_classes = Net(classes=3)  # labels go up to 9
    result = evonas.score(wrong_classes, "sweet", data="synthetic", batch_size=8, interval=INTERVAL)
    assert result.status == "failed" and result.score is None and "IndexError" in result.reason

    class TwoInputs(Net):
        def forward(self, x, y):
            return super().forward(x + y)

    result = evonas.score(TwoInputs(), "jacov", data="synthetic", batch_size=8)
    assert result.status == "failed" and result.reason.startswith("TypeError")

    with estimators.registered(NanFake):
        result = evonas.score(_net(), "fake_nan", data="synthetic", batch_size=8)
    assert (result.status, result.reason) == ("failed", "non-finite score (nan) from fake_nan")


# ---- calibration on models -------------------------------------------------------------
def test_calibration_on_models_is_the_space_calibration_on_the_same_networks(cache) -> None:
    with search_spaces.registered(ToySpace):
        space = calibration_for(ToySpace.name, "synthetic", batch_size=8, num_archs=8).result
        scorer = Scorer(ScoringSettings(ToySpace.name, "params", {}, dataset="synthetic", batch_size=8))
        models = [scorer.build(arch)[0] for arch in calibration_archs(ToySpace.name, 8, 0)]
        before = [copy.deepcopy(m.state_dict()) for m in models]
        by_function = evonas.calibrate(models, data="synthetic", batch_size=8,
                                       depth_units=search_spaces.get(ToySpace.name).depth_units)
        by_name = evonas.calibrate(models, data="synthetic", batch_size=8, depth_units=["2", "3", "4"])
        via_api = evonas.calibrate(space=ToySpace.name, data="synthetic", batch_size=8, num_archs=8)
    assert by_function.means == by_name.means == space.means == via_api.means
    assert by_function.interval == space.interval and len(by_function.trends) == 8
    assert all(torch.equal(b[k], m.state_dict()[k]) for b, m in zip(before, models) for k in b)


def test_default_depth_units_are_the_weighted_children_between_stem_and_classifier() -> None:
    model = Net()
    assert default_depth_units(model) == [model.block1, model.block2]  # not stem, pool or head
    result = evonas.calibrate([_net(0), _net(1), _net(2)], data="synthetic", batch_size=8)
    assert result.num_networks == 3 and len(result.means) == 21 and result.interval in result.bins
    assert all(t in (-1.0, 0.0, 1.0) for trend in result.trends for t in trend)  # two units: one step


@pytest.mark.parametrize("kwargs, message", [
    ({"models": [nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))]}, "has 0 depth units"),
    ({"models": [Net()], "depth_units": ["block1", "nope"]}, "depth_units"),
    ({"models": [Net()], "depth_units": lambda m: [Net().block1, Net().block2]}, "is not part of the model"),
    ({"models": [Net()], "depth_units": 3}, "must be a function"),
    ({"models": []}, "at least one model"),
    ({}, "give models=[...] or space=NAME"),
    ({"models": [Net()], "space": "nb201"}, "one of the two"),
])
def test_calibration_mistakes_are_one_line_errors(kwargs, message, cache) -> None:
    with pytest.raises(EvonasError) as exc:
        evonas.calibrate(**{"data": "synthetic", "batch_size": 8, **kwargs})
    assert message in _one_line(exc)


# ---- composites on models --------------------------------------------------------------
class RandomFake(Estimator):
    """Draws from torch's RNG: only equal to itself alone when every part starts on the same stream."""

    name = "fake_rand"
    needs_data = needs_labels = False

    def score(self, model, batches, depth_units=None):
        return 1.0 + torch.rand(()).item()


class OtherRandomFake(RandomFake):
    name = "fake_rand2"


@pytest.fixture
def random_fakes() -> Iterator[None]:
    with estimators.registered(RandomFake), estimators.registered(OtherRandomFake):
        yield


def test_a_composite_part_scores_a_model_as_it_scores_it_alone(cache, random_fakes) -> None:
    names = ("sweet_ntk", "jacov", "params", "fake_rand", "fake_rand2")
    norms = {n: {"transform": "asinh", "center": 1.0, "scale": 2.0, "unit": 1.0} for n in names}
    model = _net()
    before = copy.deepcopy(model.state_dict())
    result = evonas.score(model, "+".join(names), data="synthetic", batch_size=8, interval=INTERVAL,
                          normalisation=norms)
    assert result.ok
    alone = {n: evonas.score(model, n, data="synthetic", batch_size=8,
                             interval=INTERVAL if n.startswith("sweet") else None).score for n in names}
    assert result.extra["parts"] == alone
    expected = sum(Normalisation.from_dict(n, norms[n])(alone[n]) for n in names)
    assert result.score == pytest.approx(expected, rel=1e-12)
    assert all(torch.equal(before[k], model.state_dict()[k]) for k in before)


def test_composite_normalisation_is_measured_on_the_models(cache) -> None:
    models = [_net(seed) for seed in range(5)]
    spec = "sweet_ntk+jacov=0.5"
    norms = evonas.composite_normalisation(models, spec, data="synthetic", batch_size=8, interval=INTERVAL)
    for name in ("sweet_ntk", "jacov"):
        scores = [evonas.score(m, name, data="synthetic", batch_size=8,
                               interval=INTERVAL if name == "sweet_ntk" else None).score for m in models]
        assert norms[name] == Normalisation.from_scores(name, scores).to_dict()
    result = evonas.score(models[0], spec, data="synthetic", batch_size=8, interval=INTERVAL, normalisation=norms)
    assert result.ok and [p["name"] for p in result.settings["parts"]] == ["sweet_ntk", "jacov"]
    assert result.settings["reference"] == {"given": True}
    with pytest.raises(EvonasError, match="not a composite"):
        evonas.composite_normalisation(models, "jacov", data="synthetic")
    with pytest.raises(EvonasError, match="needs a gradient interval"):
        evonas.composite_normalisation(models, spec, data="synthetic")


# ---- out of memory -------------------------------------------------------------------
class Hungry(Estimator):
    """Runs out of memory above ``limit`` images; the score is the batch size it managed."""

    name = "fake_hungry"
    needs_data = needs_labels = False
    limit = 4
    error: type[Exception] | None = None
    sizes: list[int] = []

    def score(self, model, batches, depth_units=None):
        n = len(batches[0][0])
        Hungry.sizes.append(n)
        assert all(p.grad is None for p in model.parameters()), "gradients were not freed before the retry"
        if n > Hungry.limit:
            first = next(model.parameters())
            first.grad = torch.ones_like(first)  # what a failed pass leaves behind
            raise Hungry.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return float(n)


@pytest.fixture
def hungry(cache) -> Iterator[type[Hungry]]:
    Hungry.limit, Hungry.error, Hungry.sizes = 4, torch.cuda.OutOfMemoryError, []
    with estimators.registered(Hungry), search_spaces.registered(ToySpace):
        yield Hungry


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError, RuntimeError])
def test_out_of_memory_retries_once_at_half_the_batch(hungry, error) -> None:
    hungry.error = error
    result = evonas.score(_net(), "fake_hungry", data="synthetic", batch_size=8)
    assert (result.status, result.score, result.extra) == ("ok", 4.0, {"oom_retry": True, "batch_size": 4})
    assert hungry.sizes == [8, 4]


def test_out_of_memory_twice_raises_for_the_executor_to_retry(hungry) -> None:
    hungry.limit = 2
    result = evonas.score(_net(), "fake_hungry", data="synthetic", batch_size=8)
    assert result.status == "failed" and result.reason.startswith("OutOfMemoryError") and hungry.sizes == [8, 4]
    scorer = Scorer(ScoringSettings(ToySpace.name, "fake_hungry", {}, dataset="synthetic", batch_size=8))
    attempt = attempt_job(scorer, 0, "conv-conv-conv")
    assert attempt.raised and attempt.status == "failed" and "out of memory" in attempt.error


def test_other_runtime_errors_are_not_retried(hungry) -> None:
    hungry.error, hungry.limit = lambda _: RuntimeError("mat1 and mat2 shapes cannot be multiplied"), 2
    result = evonas.score(_net(), "fake_hungry", data="synthetic", batch_size=8)
    assert result.status == "failed" and "shapes" in result.reason and hungry.sizes == [8]


def test_a_search_records_the_retry_in_the_history_line(hungry, tmp_path) -> None:
    settings = SearchSettings(space=ToySpace.name, estimator="fake_hungry", budget=3, population=2, sample=1,
                              dataset="synthetic", batch_size=8)
    run = start_search(settings, run_dir=tmp_path / "run")
    lines = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    scored = [line for line in lines if not line["cache_hit"]]
    assert scored and all(line["oom_retry"] is True and line["batch_size"] == 4 and line["score"] == 4.0
                          for line in scored)


def test_a_composite_marks_a_part_retried_at_half_the_batch(hungry) -> None:
    composite = make_estimator("fake_hungry+params", {"parts": [
        {"name": "fake_hungry", "settings": {}, "normalisation": {"transform": "identity", "center": 0, "scale": 1}},
        {"name": "params", "settings": {}, "normalisation": {"transform": "identity", "center": 0, "scale": 1}},
    ], "reference": {}})
    result = composite.evaluate(_net(), [_batch()])
    assert result.ok and result.extra["oom_retry"] is True and result.extra["batch_size"] == 4
    assert result.extra["parts"]["fake_hungry"] == 4.0


def test_a_composite_is_an_estimator_whose_class_answers_like_one() -> None:
    cls = parse_composite("sweet+zico=0.5")
    assert issubclass(cls, Estimator) and cls.name == "sweet+zico=0.5" and cls.higher_is_better
    assert cls.needs_calibration and cls.num_batches == 2 and cls.names == ("sweet", "zico")
    identity = {"transform": "identity", "center": 0, "scale": 1}
    with estimators.registered(NanFake):
        composite = make_estimator("params+fake_nan", {"parts": [
            {"name": n, "settings": {}, "normalisation": identity} for n in ("params", "fake_nan")], "reference": {}})
        assert composite.settings()["parts"][1] == {"name": "fake_nan", "weight": 1.0, "settings": {},
                                                    "normalisation": {**identity, "unit": 1.0}}
        with pytest.raises(EstimatorError, match="fake_nan failed: non-finite score"):
            composite.score(Net(), [_batch()])
