"""NAS-Bench-201: text form, isomorphism classes, parameter counts and the lean forward pass."""
from __future__ import annotations

import csv
import random
from collections import defaultdict
from pathlib import Path

import pytest
import torch

import search_spaces
from search_spaces import GenotypeError
from search_spaces.errors import BenchmarkError
from search_spaces.nb201 import EDGES, OPS, NB201Cell, NB201Space, ResidualReduction

SPACE = search_spaces.get("nb201")
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def truth_rows(nb201_truth: Path) -> list[dict[str, str]]:
    with nb201_truth.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_benchmark_arch_round_trips_exactly(truth_rows: list[dict[str, str]]) -> None:
    assert len(truth_rows) == 15625 == SPACE.size()
    for row in truth_rows:
        assert SPACE.to_str(SPACE.from_str(row["arch"])) == row["arch"]
    assert len({row["arch"] for row in truth_rows}) == 15625


def test_canonical_key_partitions_like_the_iso_class_column(truth_rows: list[dict[str, str]]) -> None:
    keys = [SPACE.str_key(row["arch"]) for row in truth_rows]
    ours, theirs = defaultdict(set), defaultdict(set)
    for key, row in zip(keys, truth_rows):
        ours[key].add(row["index"])
        theirs[row["iso_class"]].add(row["index"])
    assert len(ours) == len(theirs) == 6466
    assert set(map(frozenset, ours.values())) == set(map(frozenset, theirs.values()))


def test_all_conv3x3_network_has_the_published_parameter_count() -> None:
    assert n_params(SPACE.build(SPACE.from_str(ALL_CONV3), 10)) == 1_531_546


def test_parameter_counts_match_the_reference_table(nb201_reference: Path) -> None:
    """The reference table's ``params`` column (millions) counts every non-``none`` edge."""
    with nb201_reference.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in random.Random(0).sample(rows, 60):
        got = n_params(SPACE.build(SPACE.from_str(row["arch"]), 10))
        assert got / 1e6 == pytest.approx(float(row["params"]), abs=1e-6), row["arch"]


def test_macro_structure_and_depth_units() -> None:
    model = SPACE.build(SPACE.from_str(ALL_CONV3), 100)
    units = SPACE.depth_units(model)
    assert [type(u) for u in units] == [NB201Cell] * 5 + [ResidualReduction] + [NB201Cell] * 5 + [
        ResidualReduction] + [NB201Cell] * 5
    assert model.stem[0].out_channels == 16 and model.classifier.in_features == 64
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    assert SPACE.proxy_options() == {"channels": 16, "cells_per_stage": 5}


def test_build_rejects_unknown_options() -> None:
    with pytest.raises(TypeError, match="layers"):
        SPACE.build(SPACE.from_str(ALL_CONV3), 10, layers=3)


def _calls(cell: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    called: list[str] = []
    handles = [m.register_forward_hook(lambda mod, inp, out, n=name: called.append(n))
               for name, m in cell.edges.items()]
    out = cell(x)
    for h in handles:
        h.remove()
    return out, called


@pytest.mark.parametrize("arch", [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|none~0|none~1|none~2|",
    "|none~0|+|none~0|skip_connect~1|+|none~0|avg_pool_3x3~1|skip_connect~2|",
])
def test_cells_cut_off_from_the_input_output_zeros_and_the_network_still_trains(arch: str) -> None:
    g = SPACE.from_str(arch)
    out, called = _calls(NB201Cell(g, 4), torch.randn(2, 4, 8, 8))
    assert out.shape == (2, 4, 8, 8) and not out.any()
    assert called == []  # nothing is computed for a cell whose output is zero
    model = SPACE.build(g, 10, channels=4, cells_per_stage=1)
    logits = model(torch.randn(2, 3, 32, 32))
    assert torch.isfinite(logits).all()
    logits.sum().backward()


def test_none_edges_have_no_module_and_unused_edges_do_not_run() -> None:
    # node 3 = x; nodes 1 and 2 are computed only for none edges, so nothing runs at all
    g = SPACE.from_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|")
    cell = NB201Cell(g, 4)
    assert sorted(cell.edges) == ["0_1", "0_2", "0_3", "1_2"]
    x = torch.randn(2, 4, 8, 8)
    out, called = _calls(cell, x)
    assert called == ["0_3"] and torch.equal(out, x)


def test_a_conv_reading_a_zero_node_gets_a_zero_tensor() -> None:
    # node 1 is zero; node 3 = conv(node 1) + skip(node 0) must still run the conv on zeros
    g = SPACE.from_str("|none~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|")
    cell = NB201Cell(g, 4)
    seen: list[torch.Tensor] = []
    cell.edges["1_3"].register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    out, called = _calls(cell, torch.randn(2, 4, 8, 8))
    assert called == ["0_3", "1_3"]  # node 2 = avg_pool(zero) contributes nothing
    assert len(seen) == 1 and not seen[0].any()
    assert out.shape == (2, 4, 8, 8)


def test_mutate_changes_exactly_one_edge_op() -> None:
    rng = random.Random(0)
    for _ in range(100):
        g = SPACE.sample(rng)
        child = SPACE.mutate(g, rng)
        changed = [e for e in EDGES if g.edges[e]["op"] != child.edges[e]["op"]]
        assert len(changed) == 1 and child.edges[changed[0]]["op"] in OPS


@pytest.mark.parametrize("text,message", [
    ("nor_conv_3x3~0", "must look like"),
    ("|nor_conv_3x3~0|+|none~0|none~1|", "3 node groups"),
    ("|nor_conv_3x3~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 inputs"),
    ("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_7x7'"),
    ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "input must be ~0"),
    ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "expected 'op~0'"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "got 4"),
])
def test_malformed_strings_name_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(GenotypeError, match=message):
        SPACE.from_str(text)


def test_describe_marks_unused_nodes_and_the_output() -> None:
    text = SPACE.describe(SPACE.from_str("|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|"))
    lines = text.splitlines()
    assert lines[0].startswith("node 1 = nor_conv_1x1(node 0)") and "unused" in lines[0]
    assert "unused" in lines[1] and "output" in lines[2]


COLUMNS = list(NB201Space.truth_columns.values())


def lookup_truth(path: Path, genotype: str):
    return SPACE.benchmark(path).match(genotype, COLUMNS)


def test_lookup_truth_exact_then_by_isomorphism(nb201_truth: Path, tmp_path: Path,
                                                truth_rows: list[dict[str, str]]) -> None:
    exact = lookup_truth(nb201_truth, ALL_CONV3)
    row = next(r for r in truth_rows if r["arch"] == ALL_CONV3)
    assert exact.how == "exact" and exact.accuracies["cifar10_test"] == float(row["cifar10_test"])
    # drop one member of a multi-member class: it is then found through an isomorphic row
    member = "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|none~2|"
    iso = next(r["iso_class"] for r in truth_rows if r["arch"] == member)
    partial = tmp_path / "partial.csv"
    with partial.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(truth_rows[0]))
        writer.writeheader()
        writer.writerows(r for r in truth_rows if r["arch"] != member)
    match = lookup_truth(partial, member)
    assert match.how == "isomorphic" and match.arch != member
    first = next(r for r in truth_rows if r["iso_class"] == iso and r["arch"] != member)
    assert match.arch == first["arch"] and match.accuracies["cifar100_test"] == float(first["cifar100_test"])
    assert match.class_size == sum(r["iso_class"] == iso for r in truth_rows) - 1
    # a table without the class answers None; a table without the columns raises
    only = tmp_path / "one.csv"
    only.write_text("arch,cifar10_test,cifar100_test,imagenet16_test\n" + ALL_CONV3 + ",1,2,3\n")
    assert lookup_truth(only, member) is None
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,acc\n" + ALL_CONV3 + ",1\n")
    with pytest.raises(BenchmarkError, match="cifar10_test"):
        lookup_truth(bad, member)
