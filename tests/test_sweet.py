"""Sweetimator family and its training-free calibration (DESIGN.md section 2)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import estimators
import search_spaces
from estimators.base import EstimatorError
from estimators.sweet import (
    GRID,
    bin_counts,
    calibrate,
    choose_bin,
    depth_trend,
    weight_gradients,
)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=True), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )


def batch(n: int = 16, classes: int = 10, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, size, size, generator=gen), torch.randint(0, classes, (n,), generator=gen)


def plain_grads(model: nn.Module, data) -> tuple[np.ndarray, np.ndarray]:
    """Reference: train mode, CE, loss.backward(), every Conv2d/Linear weight (independent code)."""
    model.train()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(data[0]), data[1]).backward()
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    # a weight the loss does not reach has gradient 0 (autograd leaves its .grad as None)
    g = np.concatenate([(m.weight.grad if m.weight.grad is not None else torch.zeros_like(m.weight)).numpy().ravel()
                        for m in layers])
    w = np.concatenate([m.weight.detach().numpy().ravel() for m in layers])
    model.zero_grad(set_to_none=True)
    return np.abs(g), w


def test_score_counts_weights_in_half_open_interval_in_train_mode() -> None:
    model, data = small_cnn(), batch()
    g, _ = plain_grads(model, data)
    values = np.unique(g)
    lo, hi = float(values[len(values) // 4]), float(values[3 * len(values) // 4])
    expected = int(((g >= np.float32(lo)) & (g < np.float32(hi))).sum())
    assert 0 < expected < g.size
    model.eval()  # the estimator must switch to batch statistics itself, then restore the mode
    score = estimators.get("sweet", interval=(lo, hi)).score(model, [data])
    assert score == expected
    assert not model.training
    # lo is one of the gradient values (counted), hi is one too (not counted)
    assert estimators.get("sweet", interval=(lo, float(np.nextafter(np.float32(lo), 1)))).score(model, [data]) \
        == int((g == np.float32(lo)).sum())


def test_sweet_snip_and_ntk_sum_over_the_sweet_weights() -> None:
    model, data = small_cnn(), batch()
    g, w = plain_grads(model, data)
    lo, hi = float(np.quantile(g, 0.3)), float(np.quantile(g, 0.9))
    mask = (g >= np.float32(lo)) & (g < np.float32(hi))
    snip = estimators.get("sweet_snip", interval=(lo, hi)).score(model, [data])
    ntk = estimators.get("sweet_ntk", interval=(lo, hi)).score(model, [data])
    assert snip == pytest.approx(float(np.sum(np.abs(w[mask]).astype(np.float64) * g[mask])), rel=1e-5)
    assert ntk == pytest.approx(float(np.sum(g[mask].astype(np.float64) ** 2)), rel=1e-5)


@pytest.mark.parametrize("name", ["sweet", "sweet_snip", "sweet_ntk"])
def test_skipping_unread_gradients_changes_no_score_and_leaves_model_untouched(name: str) -> None:
    model, data = small_cnn(), batch()
    est = estimators.get(name, interval=(1e-4, 5e-2))
    model[1].bias.requires_grad_(False)  # a caller's own flags and gradients survive scoring
    model[0].weight.grad = torch.ones_like(model[0].weight)
    flags = [p.requires_grad for p in model.parameters()]
    fast = weight_gradients(model, data, skip_unread=True)[1]
    weights, full = weight_gradients(model, data, skip_unread=False)
    for a, b in zip(fast, full):
        assert torch.equal(a, b)
    # the score from the plain backward pass, by the family's definition
    w = torch.cat([p.detach().abs().flatten() for p in weights]).double()
    g = torch.cat([t.abs().flatten() for t in full])
    sweet = (g >= 1e-4) & (g < 5e-2)
    g = g.double()
    expected = {"sweet": float(sweet.sum()), "sweet_snip": (w * g)[sweet].sum().item(),
                "sweet_ntk": g[sweet].square().sum().item()}[name]
    assert sweet.any() and est.score(model, [data]) == pytest.approx(expected, rel=1e-6)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(model[0].weight.grad, torch.ones_like(model[0].weight))
    assert all(p.grad is None for p in list(model.parameters())[1:])


def test_nb201_scores_match_a_plain_backward_pass() -> None:
    """On a real cell with none edges and a dead node, the shortcut and the plain loop agree."""
    space = search_spaces.get("nb201")
    # node 2 only feeds node 3 through `none`: its conv gets no gradient
    g = space.from_str("|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|none~2|")
    torch.manual_seed(0)
    model, data = space.build(g, 10, channels=4, cells_per_stage=1), batch(8, 10, 16)
    fast = weight_gradients(model, data, skip_unread=True)[1]
    full = weight_gradients(model, data, skip_unread=False)[1]
    assert all(torch.equal(a, b) for a, b in zip(fast, full))
    assert any(t.numel() and not t.any() for t in fast)  # the dead 1x1 conv
    reference, _ = plain_grads(model, data)
    for lo, hi in [(0.0, 5e-10), (1e-4, 5e-4), (1e-3, 1e-1)]:
        expected = int(((reference >= np.float32(lo)) & (reference < np.float32(hi))).sum())
        assert estimators.get("sweet", interval=(lo, hi)).score(model, [data]) == expected


def test_unread_parameters_get_no_gradient_work(monkeypatch) -> None:
    """While scoring, only Conv2d/Linear weights require grad (no BN/bias gradient buffers)."""
    model, data = small_cnn(), batch()
    seen = {}

    def spy(module, args, output):
        seen["requires_grad"] = {n: p.requires_grad for n, p in model.named_parameters()}

    model[-1].register_forward_hook(spy)
    estimators.get("sweet", interval=(0.0, 1.0)).score(model, [data])
    conv_linear = {"0.weight", "3.weight", "8.weight"}  # not the conv/linear biases, not BatchNorm
    assert seen["requires_grad"] == {n: n in conv_linear for n, _ in model.named_parameters()}
    assert all(p.requires_grad for p in model.parameters())


def test_unreached_weights_have_zero_gradient() -> None:
    class Dead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(12, 10, bias=False)
            self.unused = nn.Linear(12, 5, bias=False)

        def forward(self, x):
            self.unused(x.flatten(1)[:, :12])
            return self.used(x.flatten(1)[:, :12])

    weights, grads = weight_gradients(Dead(), batch())
    assert len(grads) == 2 and torch.count_nonzero(grads[1]) == 0 and grads[1].shape == (5, 12)
    assert estimators.get("sweet", interval=(0.0, 5e-10)).score(Dead(), [batch()]) >= 60


def test_interval_is_required_and_checked() -> None:
    with pytest.raises(EstimatorError, match="interval=\\(lo, hi\\)"):
        estimators.get("sweet")
    for bad in [(1e-3, 1e-4), (-1.0, 1.0), ("a", 1), (1.0,), (float("nan"), 1.0)]:
        with pytest.raises(EstimatorError, match="interval"):
            estimators.get("sweet_ntk", interval=bad)
    est = estimators.get("sweet_snip", interval=[1e-4, 5e-4])
    assert est.settings() == {"interval": [1e-4, 5e-4]}
    assert est.needs_calibration and est.needs_labels and est.num_batches == 1


def test_failures_become_failed_results() -> None:
    est = estimators.get("sweet", interval=(1e-4, 5e-4))
    no_weights = est.evaluate(nn.Sequential(nn.Flatten(), nn.BatchNorm1d(192)), [batch()])
    assert no_weights.status == "failed" and "no Conv2d or Linear" in no_weights.error
    model = small_cnn()
    with torch.no_grad():
        model[-1].weight.fill_(float("inf"))
    assert "non-finite" in est.evaluate(model, [batch()]).error
    assert "one batch" in est.evaluate(small_cnn(), []).error


def test_bin_counts_agree_with_the_score_for_every_bin() -> None:
    model, data = small_cnn(), batch()
    counts = bin_counts(weight_gradients(model, data)[1])
    assert counts.shape == (21,) and len(GRID) == 22
    for i in range(21):
        assert estimators.get("sweet", interval=(GRID[i], GRID[i + 1])).score(model, [data]) == counts[i]
    assert int(counts.sum()) == sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_grid_is_the_half_decade_grid() -> None:
    assert GRID[0] == 0.0 and GRID[-2:] == (1.0, 5.0)
    assert GRID[12:14] == (1e-4, 5e-4)
    ratios = [GRID[i + 1] / GRID[i] for i in range(1, 21)]
    assert ratios == pytest.approx([2.0, 5.0] * 10)


# ---- calibration on networks whose gradients are known exactly ----------------------
class Scaled(nn.Module):
    """A unit whose weight entries get gradient -0.5 * scale (see Toy)."""

    def __init__(self, scales: list[float]) -> None:
        super().__init__()
        self.lin = nn.Linear(len(scales), 1, bias=False)
        nn.init.zeros_(self.lin.weight)
        self.register_buffer("scales", torch.tensor([scales]))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return s + (self.scales * self.lin.weight).sum()


class Toy(nn.Module):
    """logits = [s, 0] with s = sum_d sum(scale_d * W_d) = 0 at init; labels 0 => dL/ds = -0.5."""

    def __init__(self, units: list[list[float]]) -> None:
        super().__init__()
        self.units = nn.ModuleList(Scaled(u) if u else nn.Identity() for u in units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.new_zeros(x.shape[0])
        for unit in self.units:
            s = unit(s)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


TWO_CLASS = (torch.zeros(4, 3, 2, 2), torch.zeros(4, dtype=torch.long))
SWEET, HIGH = 4e-4, 4e-2  # scales giving |grad| 2e-4 (bin [1e-4, 5e-4)) and 2e-2 (bin [1e-2, 5e-2))


def toy_a() -> Toy:
    return Toy([[SWEET, HIGH, HIGH, HIGH], [SWEET, SWEET, HIGH, HIGH], [SWEET, SWEET, SWEET, HIGH]])


def toy_b() -> Toy:  # the middle unit has no weights: its share is 0
    return Toy([[SWEET, HIGH], [], [SWEET, SWEET]])


def test_depth_trend_follows_the_formula() -> None:
    a = toy_a()
    trend = depth_trend(a, list(a.units), TWO_CLASS)
    expected = torch.zeros(21, dtype=torch.float64)
    expected[12], expected[16] = 1.0, -1.0
    assert torch.equal(trend, expected)
    b = toy_b()
    expected[12], expected[16] = 0.0, -0.5  # shares 1/2, 0, 1 and 1/2, 0, 0
    assert torch.equal(depth_trend(b, list(b.units), TWO_CLASS), expected)
    assert estimators.get("sweet", interval=(1e-4, 5e-4)).score(a, [TWO_CLASS]) == 6


def test_calibrate_averages_networks_and_picks_the_best_bin() -> None:
    done = []
    result = calibrate(((m, list(m.units)) for m in (toy_a(), toy_b())), TWO_CLASS, progress=done.append)
    assert done == [1, 2] and result.num_networks == 2
    assert result.means[12] == 0.5 and result.means[16] == -0.75
    assert sum(abs(m) for m in result.means) == 1.25
    assert result.interval == (1e-4, 5e-4) and result.chosen == 12
    assert result.bins[result.chosen] == result.interval
    again = type(result).from_dict(result.to_dict())
    assert again.interval == result.interval and again.means == result.means


def test_calibrate_rejects_bad_inputs() -> None:
    with pytest.raises(EstimatorError, match="at least one network"):
        calibrate([], TWO_CLASS)
    a = toy_a()
    with pytest.raises(EstimatorError, match="two depth units"):
        calibrate([(a, [a.units[0]])], TWO_CLASS)
    with pytest.raises(EstimatorError, match="not part of the model"):
        calibrate([(a, [a.units[0], toy_b().units[0]])], TWO_CLASS)


def test_choose_bin_ties_and_no_positive_mean() -> None:
    assert choose_bin([0.0, 0.5, 0.2, 0.5]) == 1
    assert choose_bin([-0.3, -0.1, 0.0]) == 0
    assert choose_bin([0.0, 0.0]) == 0
    assert choose_bin([-0.2, 0.01]) == 1
