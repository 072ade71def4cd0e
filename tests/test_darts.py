"""DARTS space: both text forms, validity, mutation, canonical keys and the evaluation network."""
from __future__ import annotations

import itertools
import random

import networkx as nx
import pytest
import torch

import search_spaces
from search_spaces import GenotypeError
from search_spaces.darts import CELLS, NODES, OPS, DartsCell

SPACE = search_spaces.get("darts")
# DARTS-V2 (second-order DARTS, Liu et al. 2019), in the published text form
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)
SMALL = {"channels": 4, "layers": 3}


def pairs(g: nx.DiGraph) -> list[tuple[str, int, int, str, int]]:
    """Flat (cell, node, slot, op, input) list of a genotype."""
    specs = SPACE.specs(g)
    return [(cell, node, slot, op, src) for cell in CELLS for node, entries in zip(NODES, specs[cell])
            for slot, (op, src) in enumerate(entries)]


def relabel(g: nx.DiGraph, perm: dict[int, int], swap: bool) -> nx.DiGraph:
    """The same genotype with intermediate nodes renamed by ``perm`` (and input slots swapped)."""
    mapping = {(cell, k): (cell, perm.get(k, k)) for cell, k in g.nodes}
    h = nx.relabel_nodes(g, mapping)
    if swap:
        for *_, d in h.edges(data=True):
            d["slot"] = 1 - d["slot"]
    return h


def valid_perms(g: nx.DiGraph) -> list[dict[int, int]]:
    """Renamings of nodes 2..5 (applied to both cells) that keep every input earlier than its node."""
    out = []
    for p in itertools.permutations(NODES):
        perm = dict(zip(NODES, p))
        if all(perm.get(u[1], u[1]) < perm[v[1]] for u, v in g.edges):
            out.append(perm)
    return out


def test_darts_v2_text_round_trips_verbatim_and_through_the_compact_form() -> None:
    g = SPACE.from_str(DARTS_V2)
    assert SPACE.to_darts_str(g) == DARTS_V2
    compact = SPACE.to_str(g)
    assert "Genotype" not in compact and len(compact) < len(DARTS_V2) / 2
    assert nx.utils.graphs_equal(SPACE.from_str(compact), g)
    assert SPACE.to_darts_str(SPACE.from_str(compact)) == DARTS_V2


def test_range_concat_and_whitespace_variants_parse() -> None:
    variant = DARTS_V2.replace("[2, 3, 4, 5]", "range(2, 6)").replace(", ", ",\n   ")
    assert SPACE.to_darts_str(SPACE.from_str("  " + variant + "\n")) == DARTS_V2


def test_random_genotypes_have_two_distinct_earlier_inputs_per_node() -> None:
    rng = random.Random(0)
    for _ in range(200):
        g = SPACE.sample(rng)
        for cell in CELLS:
            for k in range(2):
                assert g.in_degree((cell, k)) == 0
            for node in NODES:
                ins = list(g.in_edges((cell, node), data=True))
                assert len(ins) == 2 and {d["slot"] for *_, d in ins} == {0, 1}
                assert all(u[0] == cell and u[1] < node and d["op"] in OPS for u, _, d in ins)
                assert len({u for u, _, _ in ins}) == 2


def test_mutate_changes_exactly_one_op_or_one_input() -> None:
    rng = random.Random(1)
    kinds = set()
    for _ in range(300):
        g = SPACE.sample(rng)
        child = SPACE.mutate(g, rng)
        assert SPACE.is_valid(child)
        diff = [(a, b) for a, b in zip(pairs(g), pairs(child)) if a != b]
        assert len(diff) == 1
        (_, _, _, op_a, src_a), (_, _, _, op_b, src_b) = diff[0]
        assert (op_a != op_b) != (src_a != src_b)
        kinds.add("op" if op_a != op_b else "input")
    assert kinds == {"op", "input"}


def test_darts_v2_evaluation_network_has_3_3m_parameters_without_the_aux_head() -> None:
    g = SPACE.from_str(DARTS_V2)
    plain = sum(p.numel() for p in SPACE.build(g, 10, channels=36, layers=20).parameters())
    with_aux = sum(p.numel() for p in SPACE.build(g, 10, channels=36, layers=20, auxiliary=True).parameters())
    assert 3.2e6 <= plain <= 3.4e6
    assert with_aux > plain


def test_network_layout_reductions_at_one_and_two_thirds() -> None:
    model = SPACE.build(SPACE.from_str(DARTS_V2), 10, channels=8, layers=8)
    cells = SPACE.depth_units(model)
    assert len(cells) == 8 and all(isinstance(c, DartsCell) for c in cells)
    assert [i for i, c in enumerate(cells) if c.reduction] == [2, 5]
    assert model.stem[0].out_channels == 3 * 8
    assert SPACE.proxy_options() == {"channels": 16, "layers": 8}


def test_auxiliary_logits_only_in_training_mode() -> None:
    model = SPACE.build(SPACE.from_str(DARTS_V2), 10, auxiliary=True, **SMALL)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    logits = model(x)
    assert logits.shape == model.aux_logits.shape == (2, 10)
    (logits.sum() + 0.4 * model.aux_logits.sum()).backward()
    model.eval()
    model(x)
    assert model.aux_logits is None
    plain = SPACE.build(SPACE.from_str(DARTS_V2), 10, **SMALL).train()
    plain(x)
    assert plain.aux_logits is None


def test_auxiliary_head_handles_16px_inputs() -> None:
    model = SPACE.build(SPACE.sample(random.Random(3)), 120, auxiliary=True, **SMALL).train()
    assert model(torch.randn(2, 3, 16, 16)).shape == model.aux_logits.shape == (2, 120)


def test_drop_path_acts_only_in_training_and_follows_the_attribute() -> None:
    g = SPACE.from_str(DARTS_V2)
    torch.manual_seed(0)
    model = SPACE.build(g, 10, drop_path_prob=0.5, **SMALL)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))
    model.drop_path_prob = 0.0
    assert torch.equal(model(x), model(x))


def test_canonical_key_ignores_input_order_and_node_numbering() -> None:
    rng = random.Random(5)
    checked = 0
    for _ in range(100):
        g = SPACE.sample(rng)
        key = SPACE.canonical_key(g)
        for perm in valid_perms(g):
            for swap in (False, True):
                h = relabel(g, perm, swap)
                assert SPACE.is_valid(h)
                assert SPACE.canonical_key(h) == key
                checked += 1
    assert checked > 200  # several non-trivial renamings were exercised


def test_canonical_key_is_a_genotype_isomorphic_to_the_cell() -> None:
    rng = random.Random(6)
    keys = set()
    for _ in range(100):
        g = SPACE.sample(rng)
        rep = SPACE.from_str(SPACE.canonical_key(g))
        assert nx.is_isomorphic(
            g, rep,
            node_match=lambda a, b: True,
            edge_match=lambda a, b: a["op"] == b["op"],
        )
        keys.add(SPACE.canonical_key(g))
    assert len(keys) == 100


def test_canonical_key_separates_different_cells() -> None:
    g = SPACE.from_str(DARTS_V2)
    child = SPACE.from_str(DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_5x5', 2)"))
    rewired = SPACE.from_str(DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 4)"))
    # nodes 2 and 3 of the normal cell are identical, so reading 3 instead of 2 is the same cell
    twin = SPACE.from_str(DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 3)"))
    assert len({SPACE.canonical_key(x) for x in (g, child, rewired)}) == 3
    assert SPACE.canonical_key(twin) == SPACE.canonical_key(g)


def test_size_counts_unordered_input_pairs_of_both_cells() -> None:
    per_node = {node: len({frozenset(pair) for pair in itertools.permutations(
        [(op, src) for op in OPS for src in range(node)], 2) if pair[0][1] != pair[1][1]}) for node in NODES}
    per_cell = 1
    for count in per_node.values():
        per_cell *= count
    assert SPACE.size() == per_cell ** 2 == 1_076_746_950_455_072_400


@pytest.mark.parametrize("text,message", [
    (DARTS_V2.replace("('sep_conv_3x3', 0)", "('none', 0)", 1), "'none' is a supernet op"),
    (DARTS_V2.replace("('sep_conv_3x3', 0)", "('conv_7x7', 0)", 1), "unknown op 'conv_7x7'"),
    (DARTS_V2.replace("('sep_conv_3x3', 1)", "('sep_conv_3x3', 0)", 1), "reads node 0 twice"),
    (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "earlier node 0..4"),
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]"), "normal_concat must be"),
    (DARTS_V2.replace(", ('dil_conv_3x3', 2)]", "]"), "needs 8 .op, input. pairs"),
    (DARTS_V2.replace("reduce_concat", "reduced_concat"), "unexpected or repeated field 'reduced_concat'"),
    (DARTS_V2[:-1], "not valid Genotype"),
    ("Genotype(normal=[])", "missing field"),
    ("normal=sep3~0,sep3~1|sep3~0,sep3~1|sep3~1,skip~0|skip~0,dil3~2", "normal=op~i"),
    ("normal=sep3~0,sep3~1|sep3~0,sep3~1|sep3~1,skip~0;reduce=max3~0,max3~1|skip~2,max3~1|max3~0,skip~2|skip~2,max3~1",
     "normal cell needs 4 nodes"),
    ("normal=sep3~0|sep3~0,sep3~1|sep3~1,skip~0|skip~0,dil3~2;reduce=max3~0,max3~1|skip~2,max3~1|max3~0,skip~2|skip~2,max3~1",
     "node 2 needs 2 inputs"),
    ("normal=sep3~0,sep3~x|sep3~0,sep3~1|sep3~1,skip~0|skip~0,dil3~2;reduce=max3~0,max3~1|skip~2,max3~1|max3~0,skip~2|skip~2,max3~1",
     "expected 'op~input'"),
])
def test_malformed_genotypes_name_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(GenotypeError, match=message):
        SPACE.from_str(text)


def test_build_rejects_unknown_options() -> None:
    with pytest.raises(TypeError, match="cells_per_stage"):
        SPACE.build(SPACE.from_str(DARTS_V2), 10, cells_per_stage=5)
