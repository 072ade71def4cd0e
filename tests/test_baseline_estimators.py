"""Baseline zero-cost estimators: they run on both spaces, fail cleanly on NaN, leave the
model as they found it, and compute their published definitions (checked against
independent, naive computations on tiny networks)."""
from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import estimators
import search_spaces
from estimators.base import EstimatorResult

#: The estimators of this part (sweet and its variants live in estimators/sweet.py).
BASELINES = ("params", "flops", "grad_norm", "snip", "grasp", "fisher", "jacov", "synflow", "nwot",
             "zen", "zico", "l2_norm", "plain", "epe_nas", "gradsign", "ntk")
#: Estimators whose value never depends on a forward pass (sizes and weight norms).
STRUCTURAL = {"params", "flops", "l2_norm"}


def make(name: str) -> estimators.Estimator:
    cls = estimators.available()[name]
    return estimators.get(name, **({"interval": (1e-4, 5e-4)} if cls.needs_calibration else {}))


def random_batches(n: int, count: int = 2, size: int = 16, classes: int = 10, seed: int = 0) -> list:
    """Normalised-looking images with every label present several times (epe_nas groups by class)."""
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 3, size, size, generator=gen), torch.arange(n) % min(classes, 4))
            for _ in range(count)]


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10))


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_all_baselines_registered_with_metadata():
    registry = estimators.available()
    for name in BASELINES:
        cls = registry[name]
        assert cls.description and cls.num_batches >= 0
        assert isinstance(cls.needs_data, bool) and isinstance(cls.needs_labels, bool)
    assert registry["zico"].num_batches == 2
    assert not registry["synflow"].needs_data and not registry["params"].needs_data


@pytest.fixture(scope="module")
def space_models() -> dict[str, nn.Module]:
    """One NB-201 model (C=8 keeps it quick) and a small DARTS model (channels 8, layers 5)."""
    models = {}
    for space, options in (("nb201", {"channels": 8}), ("darts", {"channels": 8, "layers": 5})):
        sp = search_spaces.get(space)
        torch.manual_seed(1)
        models[space] = sp.build(sp.sample(random.Random(3)), 10, **options).train()
    return models


@pytest.mark.parametrize("space", ["nb201", "darts"])
@pytest.mark.parametrize("name", sorted(estimators.available()))
def test_every_estimator_scores_both_spaces(name, space, space_models):
    model = space_models[space]
    est = make(name)
    units = search_spaces.get(space).depth_units(model)
    before = snapshot(model)
    result = est.evaluate(model, random_batches(16, est.num_batches or 1), units)
    assert result.ok, result.error
    assert math.isfinite(result.score)
    if name in BASELINES:  # and they leave no trace: same weights/statistics, mode, no .grad buffers
        after = model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), name
        assert model.training and all(p.grad is None for p in model.parameters())


class NanNet(nn.Module):
    """A network whose activations are NaN from the first layer on."""

    def __init__(self) -> None:
        super().__init__()
        self.body = tiny_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * float("nan"))


@pytest.mark.parametrize("name", sorted(estimators.available()))
def test_nan_network_never_crashes(name):
    est = make(name)
    result = est.evaluate(NanNet().train(), random_batches(16, est.num_batches or 1))
    assert isinstance(result, EstimatorResult)
    assert (result.ok and math.isfinite(result.score)) or (result.status == "failed" and result.error)
    if name in BASELINES and name not in STRUCTURAL:
        assert result.status == "failed" and result.score is None
        assert "finite" in result.error or "nan" in result.error.lower()


def test_parameter_and_flop_counts_by_hand():
    model = tiny_cnn()
    # conv 3->4 (+bias), BN(4), conv 4->6, BN(6), linear 6->10 (+bias)
    assert estimators.get("params").evaluate(model, []).score == (108 + 4 + 8 + 216 + 12 + 60 + 10) / 1e6
    hw = 16 * 16
    expected = (hw * 4 * (27 + 1) + 2 * 4 * hw + 4 * hw       # conv+bias, affine BN, ReLU
                + hw * 6 * 36 + 2 * 6 * hw + 6 * hw           # conv (no bias), BN, ReLU
                + 6 * hw                                      # global average pool reads every element
                + 10 * (6 + 1))                               # linear + bias
    flops = estimators.get("flops").evaluate(model, random_batches(4, 1))
    assert flops.score == pytest.approx(expected / 1e6)


def test_synflow_is_depth_times_path_sum_on_a_linear_chain():
    """For bias-free layers fed by positive signals, every layer's sum |w * dR/dw| equals R."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5, bias=False), nn.BatchNorm1d(5), nn.ReLU(),
                          nn.Linear(5, 3, bias=False))
    before = snapshot(model)
    w1, w2 = model[1].weight.detach().double().abs(), model[4].weight.detach().double().abs()
    path_sum = (w2 @ w1 @ torch.ones(12, dtype=torch.float64)).sum().item()
    score = estimators.get("synflow").evaluate(model, [(torch.randn(4, 3, 2, 2), None)]).score
    assert score == pytest.approx(2 * path_sum, rel=1e-12)  # BatchNorm off, |weights|, float64
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def naive_layer_grads(model: nn.Module, images, labels) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, grad) per Conv2d/Linear from a plain loss.backward()."""
    model = copy.deepcopy(model)
    F.cross_entropy(model(images), labels).backward()
    return [(m.weight.detach(), m.weight.grad) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("name, formula", [
    ("grad_norm", lambda pairs: sum(g.norm() for _, g in pairs)),
    ("snip", lambda pairs: sum((w * g).abs().sum() for w, g in pairs)),
    ("plain", lambda pairs: sum((w * g).sum() for w, g in pairs)),
    ("ntk", lambda pairs: sum(g.pow(2).sum() for _, g in pairs)),
])
def test_gradient_proxies_match_plain_backward(name, formula):
    model, batches = tiny_cnn().train(), random_batches(8, 1)
    expected = float(formula(naive_layer_grads(model, *batches[0])))
    assert estimators.get(name).evaluate(model, batches).score == pytest.approx(expected, rel=1e-5)


def test_grasp_matches_explicit_hessian_vector_product():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6, bias=False), nn.Tanh(), nn.Linear(6, 4, bias=False))
    images, labels = torch.randn(5, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0])
    w1, w2 = model[1].weight.detach(), model[3].weight.detach()

    def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.tanh(images.flatten(1) @ a.T) @ b.T, labels)

    grads = torch.autograd.grad(loss(w1.requires_grad_(), w2.requires_grad_()), (w1, w2))
    _, hg = torch.autograd.functional.hvp(loss, (w1.detach(), w2.detach()), grads)
    expected = -sum((w.detach() * h).sum() for w, h in zip((w1, w2), hg)).item()
    assert estimators.get("grasp").evaluate(model, [(images, labels)]).score == pytest.approx(expected, rel=1e-5)


def test_fisher_matches_retained_activation_gradients():
    model, batches = tiny_cnn().train(), random_batches(8, 1)
    acts = []

    def keep(module, _inputs, out):
        out.retain_grad()
        acts.append((module, out))

    clone = copy.deepcopy(model)
    hooks = [m.register_forward_hook(keep) for m in clone.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    F.cross_entropy(clone(batches[0][0]), batches[0][1]).backward()
    for h in hooks:
        h.remove()
    expected = 0.0
    for module, a in acts:
        per_channel = (a * a.grad).sum(dim=tuple(range(2, a.dim()))) if a.dim() > 2 else a * a.grad
        # the references broadcast each channel's value over that channel's weights before summing
        expected += (0.5 * per_channel.pow(2).mean(0)).sum().item() * module.weight[0].numel()
    assert estimators.get("fisher").evaluate(model, batches).score == pytest.approx(expected, rel=1e-5)


def test_jacov_matches_per_sample_jacobians_and_numpy():
    """Without BatchNorm, per-sample Jacobians can be taken one image at a time."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 10))
    images = torch.randn(6, 3, 6, 6)
    rows = []
    for img in images:
        x = img[None].clone().requires_grad_(True)
        model(x).sum().backward()
        rows.append(x.grad.flatten().numpy().astype(np.float64))
    v = np.linalg.eigvals(np.corrcoef(np.stack(rows))).real
    expected = -np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5))
    model.zero_grad(set_to_none=True)
    assert estimators.get("jacov").evaluate(model, [(images, None)]).score == pytest.approx(expected, rel=1e-6)


def test_nwot_is_logdet_of_hamming_agreement_kernel():
    x = torch.randn(5, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    model = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.ReLU())  # two ReLUs see the same codes
    codes = (x.flatten(1) > 0).double()
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    expected = torch.linalg.slogdet(2 * kernel).logabsdet.item()
    assert estimators.get("nwot").evaluate(model, [(x, None)]).score == pytest.approx(expected, rel=1e-12)


def test_zico_definition_and_identical_batches():
    model, (b1, b2) = tiny_cnn().train(), random_batches(8, 2)
    g1, g2 = naive_layer_grads(model, *b1), naive_layer_grads(model, *b2)
    expected = 0.0
    for (_, a), (_, b) in zip(g1, g2):
        stacked = torch.stack([a.flatten(), b.flatten()]).double()
        std = stacked.std(0, unbiased=False)
        keep = std > 0
        total = (stacked.abs().mean(0)[keep] / std[keep]).sum().item()
        expected += math.log(total) if total > 0 else 0.0
    zico = estimators.get("zico")
    assert zico.evaluate(model, [b1, b2]).score == pytest.approx(expected, rel=1e-6)
    assert zico.evaluate(model, [b1, b1]).score == 0.0  # no variation across batches: no signal
    failed = zico.evaluate(model, [b1])
    assert failed.status == "failed" and "2 batch" in failed.error


def test_gradsign_counts_sign_agreement():
    model, batches = tiny_cnn().train(), random_batches(6, 1)
    images, labels = batches[0]
    total = None
    for i in range(len(images)):
        signs = torch.cat([g.sign().flatten() for _, g in naive_layer_grads(model, images[i:i + 1], labels[i:i + 1])])
        total = signs if total is None else total + signs
    assert estimators.get("gradsign").evaluate(model, batches).score == total.abs().sum().item()


def test_zen_is_seeded_and_needs_a_spatial_feature_map(space_models):
    model = space_models["darts"]  # pools functionally: found through the last 4-D module output
    batches = random_batches(8, 1)
    a, b = (estimators.get("zen", seed=5).evaluate(model, batches) for _ in range(2))
    assert a.ok and a.score == b.score
    assert estimators.get("zen", seed=6).evaluate(model, batches).score != a.score
    assert estimators.get("zen").settings() == {"mixup_gamma": 0.01, "seed": 0}
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10), nn.BatchNorm1d(10))
    failed = estimators.get("zen").evaluate(flat, batches)
    assert failed.status == "failed" and "feature map" in failed.error


def _epe_nas_by_hand(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """EPE-NAS from its definition, with numpy: per class, sum log(|corr| + 1e-5) of the input Jacobians."""
    x = images.clone().requires_grad_(True)
    model(x).sum().backward()
    jac = x.grad.flatten(1).double().numpy()
    total = 0.0
    for c in sorted(set(labels.tolist())):
        rows = jac[(labels == c).numpy()]
        if len(rows) >= 2:
            total += abs(np.log(np.abs(np.corrcoef(rows)) + 1e-5).sum())
    return total


def test_epe_nas_uses_labels_per_class():
    model, batches = tiny_cnn().train(), random_batches(12, 1)
    images, labels = batches[0]
    est = estimators.get("epe_nas")
    for labelling in (labels, torch.zeros_like(labels), labels % 2):
        expected = _epe_nas_by_hand(copy.deepcopy(model), images, labelling)
        assert est.evaluate(model, [(images, labelling)]).score == pytest.approx(expected, rel=1e-9)
    singletons = est.evaluate(model, [(images, torch.arange(12))]).score
    assert singletons == 0.0  # no class has two samples: no correlations to score


@pytest.mark.parametrize("name", ["jacov", "epe_nas"])
def test_input_jacobian_of_a_cut_off_cell_is_a_clear_failure(name):
    """An NB-201 cell with no path from input to output has no input Jacobian: failed, with why."""
    space = search_spaces.get("nb201")
    cut_off = space.from_str("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    model = space.build(cut_off, 10, channels=4, cells_per_stage=1)
    result = make(name).evaluate(model, random_batches(1, count=1))
    assert result.status == "failed" and "does not depend on the input" in result.error
