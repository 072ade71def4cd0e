"""NAS-Bench-101: text form and pruning, exact isomorphism keys, NB-101 sampling and mutation,
the published network (parameter counts against the shared table) and table reading."""
from __future__ import annotations

import csv
import itertools
import random
from collections import defaultdict
from pathlib import Path

import networkx as nx
import pytest
import torch
from torch import nn

import estimators
import search_spaces
from evonas.correlating import load_cells
from evonas.recipes import default_recipe
from search_spaces import GenotypeError
from search_spaces.errors import BenchmarkError
from search_spaces.nb101 import MAX_EDGES, MAX_VERTICES, NB101Cell, OPS, vertex_channels

SPACE = search_spaces.get("nb101")
SMALL = {"channels": 8, "stacks": 2, "cells_per_stack": 1}
C3, C1, MP = OPS
#: input -> conv3x3 -> output: the 3x3 adjacency 010/001/000.
CHAIN = f"010001000:input,{C3},output"


def bits(n: int, edges: list[tuple[int, int]]) -> str:
    return "".join("1" if (i, j) in edges else "0" for i in range(n) for j in range(n))


@pytest.fixture(scope="module")
def table(shared_dir: Path) -> Path:
    path = shared_dir / "benchmarks" / "nb101_cifar10_dev.csv"
    if not path.is_file():
        pytest.skip(f"NAS-Bench-101 table {path} is absent")
    return path


@pytest.fixture(scope="module")
def rows(table: Path) -> list[dict[str, str]]:
    with table.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ---- text form and pruning ------------------------------------------------------------------------
def test_text_form_round_trips_and_fewer_vertices_parse() -> None:
    for text in (CHAIN, "0100:input,output", bits(4, [(0, 1), (0, 2), (1, 3), (2, 3), (0, 3)]) + f":input,{C1},{MP},output"):
        g = SPACE.from_str(text)
        assert SPACE.to_str(g) == text
        assert [g.nodes[v]["op"] for v in sorted(g)][0] == "input"
    assert SPACE.from_str(" " + CHAIN + " ").number_of_nodes() == 3


def test_pruning_drops_vertices_off_every_input_output_path() -> None:
    # 7 vertices: 1 feeds a dead end (5 has no way out), 4 is never fed; only 0 -> 1 -> 3 -> 6 and 0 -> 6 survive.
    edges = [(0, 1), (1, 3), (3, 6), (0, 6), (1, 5), (2, 3), (4, 6), (2, 4)]
    text = bits(7, edges) + f":input,{C3},{C1},{MP},{C1},{C3},output"
    g = SPACE.from_str(text)
    assert SPACE.to_str(g) == bits(4, [(0, 1), (1, 2), (2, 3), (0, 3)]) + f":input,{C3},{MP},output"
    assert SPACE.is_valid(g)


def test_more_than_nine_edges_are_fine_when_pruning_leaves_nine_at_most() -> None:
    full = [(i, j) for i in range(6) for j in range(i + 1, 6)]  # 15 edges among 0..5, none into 6
    text = bits(7, full + [(0, 6)]) + ":" + ",".join(["input", C3, C3, C3, C3, C3, "output"])
    assert SPACE.to_str(SPACE.from_str(text)) == "0100:input,output"


@pytest.mark.parametrize("text, problem", [
    ("", "must look like"),
    ("010001000", "must look like"),
    ("010001000:input,conv3x3-bn-relu:output", "must look like"),
    ("01x001000:input,conv3x3-bn-relu,output", "0/1 bits"),
    ("01000100:input,conv3x3-bn-relu,output", "n\\*n bits"),
    ("0" * 64 + ":" + ",".join(["input"] + [C3] * 6 + ["output"]), "n\\*n bits"),
    ("010001000:input,output", "needs 3 ops"),
    ("010001000:conv3x3-bn-relu,conv3x3-bn-relu,output", "first op must be 'input'"),
    ("010001000:input,conv5x5-bn-relu,output", "unknown op 'conv5x5-bn-relu'"),
    ("010101000:input,conv3x3-bn-relu,output", "strictly upper-triangular"),
    ("010000000:input,conv3x3-bn-relu,output", "cannot reach the output"),
    (bits(6, [(0, 1), (0, 2), (0, 3), (0, 4), (1, 5), (2, 5), (3, 5), (4, 5), (1, 2), (2, 3)]) + ":"
     + ",".join(["input"] + [C3] * 4 + ["output"]), "at most 9 edges"),
])
def test_malformed_strings_raise_one_line_genotype_errors(text: str, problem: str) -> None:
    with pytest.raises(GenotypeError, match=problem) as info:
        SPACE.from_str(text)
    assert "NB-101" in str(info.value) and "\n" not in str(info.value)


def test_graphs_must_be_pruned_well_formed_and_node_labelled() -> None:
    g = SPACE.from_str(CHAIN)
    dangling = g.copy()
    dangling.add_node(3, op=C1)
    dangling.add_edge(1, 3)
    edge_op = g.copy()
    edge_op.edges[0, 1]["op"] = C3
    backwards = nx.DiGraph([(1, 0), (1, 2)])
    nx.set_node_attributes(backwards, {0: "input", 1: C3, 2: "output"}, "op")
    for bad in (dangling, edge_op, backwards, nx.DiGraph(), "not a graph"):
        assert not SPACE.is_valid(bad)
        with pytest.raises(GenotypeError):
            SPACE.to_str(bad)


# ---- keys and isomorphism -------------------------------------------------------------------------
def _relabeled(g: nx.DiGraph, rng: random.Random) -> nx.DiGraph:
    """``g`` renumbered along a random topological order (input first, output last): an isomorphic genotype."""
    orders = [o for o in nx.all_topological_sorts(g)]
    order = rng.choice(orders)
    return nx.relabel_nodes(g, {old: new for new, old in enumerate(order)})


def test_isomorphic_renumberings_share_a_key_and_others_do_not() -> None:
    rng = random.Random(0)
    seen = 0
    for _ in range(60):
        g = SPACE.sample(rng)
        for _ in range(3):
            h = _relabeled(g, rng)
            assert SPACE.is_valid(h)
            seen += SPACE.to_str(h) != SPACE.to_str(g)
            assert SPACE.canonical_key(h) == SPACE.canonical_key(g)
    assert seen > 20  # the renumberings really changed the text
    # Two maxpool/conv vertices side by side: swapping their ops gives the same cell, moving a conv does not.
    a = bits(4, [(0, 1), (0, 2), (1, 3), (2, 3)])
    assert SPACE.str_key(f"{a}:input,{C3},{MP},output") == SPACE.str_key(f"{a}:input,{MP},{C3},output")
    chain = bits(4, [(0, 1), (1, 2), (2, 3)])
    assert SPACE.str_key(f"{chain}:input,{C3},{MP},output") != SPACE.str_key(f"{chain}:input,{MP},{C3},output")


def test_key_is_a_valid_genotype_of_the_same_cell() -> None:
    rng = random.Random(1)
    for _ in range(40):
        g = SPACE.sample(rng)
        key = SPACE.canonical_key(g)
        assert SPACE.str_key(key) == key
        assert nx.is_isomorphic(SPACE.from_str(key), g, node_match=lambda x, y: x["op"] == y["op"])


@pytest.mark.filterwarnings("ignore:The hashes produced for directed graphs changed")
def test_table_keys_agree_exactly_with_graph_isomorphism(rows: list[dict[str, str]]) -> None:
    graphs = [SPACE.from_str(SPACE.genotype_of_row(row)) for row in rows]
    keys = [SPACE.canonical_key(g) for g in graphs]
    groups: dict[str, list[int]] = defaultdict(list)  # WL hash: equal for isomorphic graphs
    for i, g in enumerate(graphs):
        groups[nx.weisfeiler_lehman_graph_hash(g, node_attr="op")].append(i)
    match = lambda x, y: x["op"] == y["op"]  # noqa: E731
    for members in groups.values():
        for i, j in itertools.combinations(members, 2):
            assert (keys[i] == keys[j]) == nx.is_isomorphic(graphs[i], graphs[j], node_match=match)
    hash_of = {i: h for h, members in groups.items() for i in members}
    assert all(hash_of[i] == hash_of[j] for i, j in itertools.combinations(range(len(keys)), 2) if keys[i] == keys[j])
    assert 200 < len(set(keys)) < len(rows)  # the table repeats some cells under other (unpruned) matrices


# ---- sampling and mutation ------------------------------------------------------------------------
def test_samples_are_valid_pruned_cells_and_follow_the_seed() -> None:
    draw = lambda seed, k: [SPACE.to_str(SPACE.sample(random.Random(seed))) for _ in range(k)]  # noqa: E731
    assert draw(5, 3) == draw(5, 3)
    rng = random.Random(2)
    sizes = []
    for _ in range(300):
        g = SPACE.sample(rng)
        assert SPACE.is_valid(g) and g.number_of_edges() <= MAX_EDGES and g.number_of_nodes() <= MAX_VERTICES
        sizes.append(g.number_of_nodes())
    # Uniform over unique cells: most have 7 vertices, some 6 (NB-101's own sampler gives mostly 2 to 5).
    assert 0.75 < sizes.count(7) / len(sizes) < 0.95 and sizes.count(6) > 15 and min(sizes) >= 4


def test_mutation_is_valid_never_isomorphic_to_the_parent_and_can_grow_a_cell() -> None:
    rng = random.Random(3)
    g = SPACE.from_str("0100:input,output")
    largest = 2
    for _ in range(300):
        child = SPACE.mutate(g, rng)
        assert SPACE.is_valid(child)
        assert SPACE.canonical_key(child) != SPACE.canonical_key(g)
        largest = max(largest, child.number_of_nodes())
        g = child
    assert largest >= 6
    again = lambda: SPACE.to_str(SPACE.mutate(SPACE.from_str(CHAIN), random.Random(9)))  # noqa: E731
    assert again() == again()


# ---- networks -------------------------------------------------------------------------------------
def test_vertex_channels_split_the_output_and_take_the_max_of_successors() -> None:
    # 1 -> 2, 1 -> 3; 2, 3, 4 feed the output (vertex 5): 128 = 43 + 43 + 42, vertex 1 takes max(43, 43).
    edges = ((0, 1), (0, 4), (1, 2), (1, 3), (2, 5), (3, 5), (4, 5))
    assert vertex_channels(edges, 6, 64, 128) == [64, 43, 43, 43, 42, 128]
    assert vertex_channels(((0, 1),), 2, 64, 128) == [64, 128]


def test_cell_output_is_the_concat_of_its_feeders_plus_the_projected_input() -> None:
    a = bits(4, [(0, 1), (0, 2), (1, 3), (2, 3), (0, 3)])
    cell = NB101Cell(((("input", C1, MP, "output")), ((0, 1), (0, 2), (0, 3), (1, 3), (2, 3))), 6, 10)
    assert SPACE.to_str(SPACE.from_str(f"{a}:input,{C1},{MP},output")).startswith(a)
    assert set(cell.projections) == {"1", "2", "3"} and cell.channels == [6, 5, 5, 10]
    x = torch.randn(2, 6, 8, 8)
    out = cell(x)
    assert out.shape == (2, 10, 8, 8)
    torch.testing.assert_close(out[:, 5:] - cell.projections["3"](x)[:, 5:], cell.vertices["2"](cell.projections["2"](x)))


def test_small_network_runs_forward_and_backward() -> None:
    torch.manual_seed(0)
    model = SPACE.build(SPACE.sample(random.Random(4)), 10, **SMALL)
    logits = model(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert len(SPACE.depth_units(model)) == 2
    with pytest.raises(TypeError, match="unknown NB-101 build options"):
        SPACE.build(SPACE.from_str(CHAIN), 10, layers=3)


def test_trivial_cell_network_has_the_hand_counted_parameters() -> None:
    """Input -> output only: every cell is one 1x1 projection (conv + BN); stem 3x3 conv + BN; linear with bias."""
    stem = 3 * 9 * 128 + 2 * 128
    cells = 3 * (128 * 128 + 256) + (128 * 256 + 512) + 2 * (256 * 256 + 512) + (256 * 512 + 1024) + 2 * (512 * 512 + 1024)
    with torch.device("meta"):
        model = SPACE.build(SPACE.from_str("0100:input,output"), 10)
    assert sum(p.numel() for p in model.parameters()) == stem + cells + 512 * 10 + 10 == 882_570


def test_parameter_counts_match_suite_zero_for_every_table_row(rows: list[dict[str, str]], monkeypatch) -> None:
    """Suite-Zero's ``params`` (millions, 10 classes, BN and biases included) for all 350 cells."""
    for cls in (nn.Conv2d, nn.Linear, nn.BatchNorm2d):  # counts do not depend on the initial values
        monkeypatch.setattr(cls, "reset_parameters", lambda self: None)
    params = estimators.get("params")
    for row in rows:
        with torch.device("meta"):
            model = SPACE.build(SPACE.from_str(SPACE.genotype_of_row(row)), 10)
        assert params.score(model, []) == pytest.approx(float(row["params"]), abs=5e-7), row["matrix"]


def test_recipe_and_options_are_published_nb101() -> None:
    recipe = default_recipe(SPACE)
    assert (recipe.epochs, recipe.batch_size, recipe.weight_decay, recipe.channels) == (108, 256, 1e-4, 128)
    assert SPACE.training_options(recipe.to_dict()) == {"channels": 128}
    assert SPACE.population_sample == (100, 10) and SPACE.size() == 423_624


# ---- benchmark tables -----------------------------------------------------------------------------
def test_table_reads_matrix_and_ops_columns_and_finds_isomorphic_cells(table: Path, rows: list[dict[str, str]]) -> None:
    bench = SPACE.benchmark(table)
    cells = bench.cells("val_accuracy")
    assert len(cells) == len(rows) == 350
    assert cells[0].arch == f"{rows[0]['matrix']}:{rows[0]['ops']}"
    assert cells[0].truth == pytest.approx(float(rows[0]["val_accuracy"]))
    pruned = SPACE.to_str(_relabeled(SPACE.from_str(cells[0].arch), random.Random(0)))
    match = bench.match(pruned, ["val_accuracy"])  # row 0 is stored unpruned, so only its class matches
    assert match is not None and match.how == "isomorphic" and match.arch == cells[0].arch
    assert match.accuracies["val_accuracy"] == cells[0].truth
    assert len(load_cells("nb101", archs_file=table, column="val_accuracy")) == 350


def test_table_without_genotype_columns_names_them(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("matrix,val_accuracy\n0100,90\n")
    with pytest.raises(BenchmarkError, match="lacks the column\\(s\\) matrix and ops"):
        SPACE.benchmark(path)
    path.write_text('arch,val_accuracy\n"0100:input,output",90\n')
    assert SPACE.benchmark(path).accuracy("0100:input,output", "val_accuracy") == 90
