"""Costs of a cell: params and FLOPs as the estimators count them, units, the latency lookup table."""
from __future__ import annotations

import importlib.util
import math
import random
import sys

import pytest
import torch
from torch import nn

import search_spaces
from cli_helpers import assert_one_line_error, run_cli
from estimators.flops import Flops
from estimators.params import Params
from evonas.costs import CostModel, LatencySettings, LatencyTable, build_table, latency_table, table_path
from evonas.costs import latency as latency_module
from evonas.errors import EvonasError
from evonas.searching.driver import latency_settings
from evonas.settings import LATENCY_BACKENDS, SearchSettings, parse_cost

CONV_CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
#: node 1 holds a 3x3 conv but nothing reads node 1: the conv is dead and must cost no time.
DEAD_CONV = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
ONLY_SKIP = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
EMPTY = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
#: node 1 is never written, so its conv reads zeros: eager PyTorch runs it, an ONNX export folds it.
FOLDED = "|none~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


def test_units_are_required_and_converted():
    assert parse_cost("params", "1.0M") == 1.0 and parse_cost("params", "500K") == 0.5
    assert parse_cost("flops", "150M") == 150.0 and parse_cost("flops", "1.5G") == 1500.0
    assert parse_cost("latency", "2.5ms") == 2.5 and parse_cost("latency", "800us") == pytest.approx(0.8)
    assert parse_cost("latency", "0.1s") == pytest.approx(100.0)
    for cost, text in (("params", "3ms"), ("params", "1.0"), ("latency", "1M"), ("flops", "lots"), ("params", "0M")):
        with pytest.raises(EvonasError, match="--max-"):
            parse_cost(cost, text)


def test_params_and_flops_match_the_estimators_on_the_deployed_network():
    space = search_spaces.get("nb201")
    with torch.random.fork_rng():
        model = space.build(space.from_str(CONV_CELL), 10, channels=16, cells_per_stage=5)
    costs = CostModel("nb201", "cifar10", ("params", "flops"))(CONV_CELL, space.str_key(CONV_CELL))
    assert costs["params"] == pytest.approx(Params().score(model, []), abs=1e-6)
    assert costs["flops"] == pytest.approx(Flops().score(model, [(torch.zeros(1, 3, 32, 32), None)]), abs=1e-6)
    # the fixed part (stem, reductions, head) is the all-none cell's whole cost
    bounds = CostModel("nb201", "cifar10", ("params", "flops")).lower_bounds()
    empty = CostModel("nb201", "cifar10", ("params", "flops"))(EMPTY, space.str_key(EMPTY))
    assert bounds == pytest.approx(empty)
    assert costs["params"] > bounds["params"] and costs["flops"] > bounds["flops"]


def test_costs_are_cached_by_canonical_key(monkeypatch):
    model = CostModel("nb201", "cifar10", ("params",))
    space = search_spaces.get("nb201")
    first = model(CONV_CELL, space.str_key(CONV_CELL))
    monkeypatch.setattr(model, "_split", lambda genotype: pytest.fail("recomputed a cached cost"))
    assert model(CONV_CELL, space.str_key(CONV_CELL)) == first
    fresh = CostModel("nb201", "cifar10", ("params",))
    fresh.fill([{"key": "k", "costs": {"params": 0.5}, "status": "ok"}])
    monkeypatch.setattr(fresh, "_split", lambda genotype: pytest.fail("recomputed a recorded cost"))
    assert fresh("anything", "k") == {"params": 0.5}


def fake_timer(calls: list):
    """Deterministic 'time': 1 ms per thousand parameters plus 0.01 ms per thousand input values."""
    def timer(module, x):
        calls.append(type(module).__name__)
        return sum(p.numel() for p in module.parameters()) / 1e3 + x.numel() / 1e5
    return timer


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """One fake-timed table for the module (tracing the space's ops takes seconds): (table, path, cached, calls, cache)."""
    cache = tmp_path_factory.mktemp("latency_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVONAS_CACHE", str(cache))
        mp.setattr(latency_module, "SATURATION", 15)
        calls: list[str] = []
        table, path, cached = latency_table(LatencySettings("nb201"), timer=fake_timer(calls))
    return table, path, cached, calls, cache


@pytest.fixture()
def tiny_table(monkeypatch, tiny_build):
    """The module's table, with its cache folder as this test's ``EVONAS_CACHE`` and its own copy of the calls."""
    table, path, cached, calls, cache = tiny_build
    monkeypatch.setenv("EVONAS_CACHE", str(cache))
    return table, path, cached, list(calls)


def test_latency_table_times_each_distinct_op_once_and_predicts_the_sum(tiny_table):
    table, path, cached, calls = tiny_table
    assert not cached and path.exists() and path.parent.name == "latency"
    # 4 non-none ops x 3 stages, each timed once; then the 5 reference networks
    assert len(table.ops) == 12 and len(calls) == 12 + latency_module.REFERENCE_CELLS
    assert calls[-latency_module.REFERENCE_CELLS:] == ["NB201Network"] * latency_module.REFERENCE_CELLS
    shapes = {key.rpartition(" @ ")[2] for key in table.ops}
    assert shapes == {"1x16x32x32", "1x32x16x16", "1x64x8x8"}
    # predict = fixed part + the table entries of the ops the network calls
    skip = sum(ms for key, ms in table.ops.items() if key.startswith("Identity()"))
    assert table.predict(EMPTY) == pytest.approx(table.fixed_ms)
    assert table.predict(ONLY_SKIP) == pytest.approx(table.fixed_ms + 5 * skip)
    assert table.predict(DEAD_CONV) == pytest.approx(table.predict(ONLY_SKIP))  # dead ops cost nothing
    assert table.predict(FOLDED) > table.predict(ONLY_SKIP)  # a conv of zeros still runs in eager PyTorch
    conv = [ms for key, ms in table.ops.items() if "kernel_size=(3, 3)" in key]
    assert table.predict("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|") == pytest.approx(
        table.fixed_ms + 5 * (2 * sum(conv) + skip))


def test_the_fixed_part_is_the_median_whole_network_residual(tiny_table):
    table, *_ = tiny_table
    assert len(table.residuals) == latency_module.REFERENCE_CELLS
    assert table.fixed_ms == pytest.approx(sorted(table.residuals)[len(table.residuals) // 2])


def test_latency_table_is_cached_per_setting(tiny_table, monkeypatch):
    table, path, _, calls = tiny_table
    again, path2, cached = latency_table(LatencySettings("nb201"), timer=fake_timer(calls))
    assert cached and path2 == path and again.to_dict() == table.to_dict()
    assert table_path(LatencySettings("nb201", threads=2)) != path
    assert table_path(LatencySettings("nb201", batch_size=8)) != path
    assert LatencyTable.load(path).predict(CONV_CELL) == pytest.approx(table.predict(CONV_CELL))
    with pytest.raises(EvonasError, match="no entry"):
        LatencyTable(table.settings, {}, 0.0, []).predict(CONV_CELL)
    with pytest.raises(EvonasError, match="--latency-device"):
        build_table(LatencySettings("nb201", device="tpu"))


needs_onnxruntime = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                                       reason="the onnxruntime backend needs pip install 'evonas[onnx]'")


@needs_onnxruntime
def test_the_onnxruntime_timer_times_a_conv_and_an_identity():
    timer = latency_module.onnx_timer(warmup=1, repeats=3)
    for module in (nn.Conv2d(8, 8, 3, padding=1), nn.Identity()):  # nn.Identity: a graph of one Identity node
        ms = timer(module.eval(), torch.randn(1, 8, 16, 16))
        assert ms > 0 and math.isfinite(ms)


@needs_onnxruntime
def test_build_table_times_ops_and_networks_in_onnxruntime(monkeypatch, tmp_path):
    monkeypatch.setenv("EVONAS_CACHE", str(tmp_path))
    for name, value in (("SATURATION", 15), ("REFERENCE_CELLS", 2), ("WARMUP", 1), ("REPEATS", 2)):
        monkeypatch.setattr(latency_module, name, value)
    exported: list[str] = []
    to_onnx = latency_module._to_onnx
    monkeypatch.setattr(latency_module, "_to_onnx", lambda m, x: exported.append(type(m).__name__) or to_onnx(m, x))
    settings = LatencySettings("nb201", backend="onnxruntime")
    table, path, _ = latency_table(settings)  # the timer comes from settings.backend
    # each op inside a small graph (op, then a pool) less the pool alone (one per shape); 2 reference networks
    assert len(table.ops) == 12 and exported.count("Sequential") == 12 and exported.count("AvgPool2d") == 3
    assert exported[-2:] == ["NB201Network"] * 2 and len(exported) == 12 + 3 + 2
    assert all(ms >= 0 and math.isfinite(ms) for ms in table.ops.values())
    assert table.settings["backend"] == "onnxruntime" and path != table_path(LatencySettings("nb201"))
    assert math.isfinite(table.predict(CONV_CELL))
    assert table.ops_ms(FOLDED) == pytest.approx(table.ops_ms(ONLY_SKIP))  # ONNX Runtime folds a conv of zeros


def test_every_backend_has_a_timer_and_an_unknown_one_is_refused():
    assert set(latency_module._TIMERS) == set(latency_module.BACKENDS) == set(LATENCY_BACKENDS)
    with pytest.raises(EvonasError, match="--latency-backend must be one of torch, onnxruntime"):
        latency_module.make_timer(LatencySettings("nb201", backend="tensorrt"))


@pytest.mark.parametrize("argv", [["latency", "build", "--backend", "tensorrt"],
                                  ["latency", "show", "--backend", "tensorrt"],
                                  ["search", "--max-latency", "2ms", "--latency-backend", "tensorrt"]])
def test_an_unknown_backend_is_a_one_line_error(monkeypatch, capsys, tmp_path, argv):
    monkeypatch.setenv("EVONAS_CACHE", str(tmp_path))
    extra = ["--run-dir", str(tmp_path / "r"), "--budget", "4", "--population", "2"] if argv[0] == "search" else []
    code, out, err = run_cli(monkeypatch, capsys, *argv, *extra)
    assert_one_line_error(code, out, err, "--latency-backend must be one of torch, onnxruntime")


def test_without_onnxruntime_its_backend_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("EVONAS_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    code, out, err = run_cli(monkeypatch, capsys, "latency", "build", "--backend", "onnxruntime")
    assert_one_line_error(code, out, err, "pip install 'evonas[onnx]'")


def test_the_search_backend_reaches_the_latency_settings():
    assert latency_settings(SearchSettings(space="nb201")).backend == "torch"
    chosen = SearchSettings(space="nb201", budget=30, latency_backend="onnxruntime").resolved()
    assert latency_settings(chosen).backend == "onnxruntime"
    with pytest.raises(EvonasError, match="--latency-backend"):
        SearchSettings(space="nb201", budget=30, latency_backend="tvm").resolved()


def test_op_modules_are_the_cells_searchable_ops():
    space = search_spaces.get("darts")
    graph = space.sample(random.Random(0))
    with torch.device("meta"):
        model = space.build(graph, 10, channels=8, layers=3)
    assert len(space.op_modules(model)) == 3 * 8  # 8 ops per cell, preprocessing excluded
