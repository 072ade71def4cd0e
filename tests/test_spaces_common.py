"""Behaviour every registered search space shares (built-ins, installed plug-ins, the test toy space):
sampling, text round trip, mutation, building, training step, depth units, drawing sketches."""
from __future__ import annotations

import random

import networkx as nx
import pytest
import torch

import search_spaces
from search_spaces import GenotypeError, UnknownSpaceError
from toy_space import ToySpace

#: Small networks so 50 forward/backward passes per space stay fast on one thread (other spaces,
#: plug-ins among them, are built with their scoring proxy options).
SMALL = {"nb201": {"channels": 4, "cells_per_stage": 1}, "darts": {"channels": 4, "layers": 3},
         "nb101": {"channels": 8}}
BUILT_IN = ("darts", "nb101", "nb201")
with search_spaces.registered(ToySpace):
    SPACES = sorted(search_spaces.available())  # every space this installation knows, plus the toy plug-in


@pytest.fixture(params=SPACES)
def space(request: pytest.FixtureRequest) -> search_spaces.SearchSpace:
    with search_spaces.registered(ToySpace):
        yield search_spaces.get(request.param)


def small(space: search_spaces.SearchSpace) -> dict:
    return SMALL.get(space.name, space.proxy_options())


def _ops_of(g: nx.DiGraph) -> list[str]:
    """The op labels of a genotype, on edges and on nodes (NAS-Bench-101 puts them on vertices)."""
    return [op for *_, op in g.edges(data="op") if op] + [op for _, op in g.nodes(data="op") if op]


def test_registry_lists_the_built_in_spaces_and_rejects_unknown() -> None:
    assert set(BUILT_IN) <= set(search_spaces.available())
    with pytest.raises(UnknownSpaceError, match="choose one of"):
        search_spaces.get("nope")


def test_samples_are_valid_and_round_trip_exactly(space: search_spaces.SearchSpace) -> None:
    rng = random.Random(0)
    for _ in range(100):
        g = space.sample(rng)
        assert space.is_valid(g)
        text = space.to_str(g)
        back = space.from_str(text)
        assert nx.utils.graphs_equal(back, g)
        assert space.to_str(back) == text
        assert space.canonical_key(back) == space.canonical_key(g) == space.str_key(text)


def test_sampling_follows_the_seed(space: search_spaces.SearchSpace) -> None:
    draw = lambda seed: [space.to_str(space.sample(random.Random(seed))) for _ in range(5)]  # noqa: E731
    assert draw(3) == draw(3)
    distinct = len({space.to_str(space.sample(random.Random(s))) for s in range(20)})
    assert distinct >= (18 if (space.size() or 10**9) > 10**5 else 10)  # a small space repeats by chance


def test_mutate_returns_a_valid_child_never_the_parent(space: search_spaces.SearchSpace) -> None:
    rng = random.Random(1)
    g = space.sample(rng)
    for _ in range(200):
        parent = space.to_str(g)
        child = space.mutate(g, rng)
        assert space.is_valid(child)
        assert space.to_str(child) != parent
        assert space.to_str(g) == parent  # the parent is left untouched
        g = child


def test_text_mutation_makes_the_same_draws_and_child_as_graph_mutation(space: search_spaces.SearchSpace) -> None:
    """``mutate_str`` (the driver's fast path) must not change a seeded search."""
    cells, on_graphs, on_text = random.Random(3), random.Random(4), random.Random(4)
    text = space.to_str(space.sample(cells))
    for _ in range(300):
        child = space.mutate_str(text, on_text)
        assert child == space.to_str(space.mutate(space.from_str(text), on_graphs))
        assert space.str_key(child) == space.canonical_key(space.from_str(child))
        text = child if cells.random() < 0.7 else space.to_str(space.sample(cells))
    assert on_text.getstate() == on_graphs.getstate()


def test_forward_backward_for_50_random_genotypes(space: search_spaces.SearchSpace) -> None:
    rng = random.Random(2)
    x = torch.randn(2, 3, 32, 32)
    for _ in range(50):
        model = space.build(space.sample(rng), 10, **small(space))
        logits = model(x)
        assert logits.shape == (2, 10) and torch.isfinite(logits).all()
        logits.logsumexp(1).sum().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(gr).all() for gr in grads)
        assert any(gr.abs().sum() > 0 for gr in grads)


def test_build_with_the_same_seed_gives_identical_weights(space: search_spaces.SearchSpace) -> None:
    g = space.sample(random.Random(4))

    def weights(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return space.build(g, 10, **small(space)).state_dict()

    a, b, c = weights(7), weights(7), weights(8)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_depth_units_are_the_searchable_modules_in_forward_order(space: search_spaces.SearchSpace) -> None:
    model = space.build(space.sample(random.Random(5)), 10, **small(space))
    seen: list[torch.nn.Module] = []
    units = space.depth_units(model)
    handles = [u.register_forward_hook(lambda m, *_: seen.append(m)) for u in units]
    model(torch.randn(2, 3, 32, 32))
    for h in handles:
        h.remove()
    assert seen == units and len(set(map(id, units))) == len(units)


def test_describe_is_multi_line_and_names_every_op(space: search_spaces.SearchSpace) -> None:
    g = space.sample(random.Random(6))
    text = space.describe(g)
    assert len(text.splitlines()) >= 3
    for op in _ops_of(g):
        if op != "none":
            assert op in text


def test_sketches_draw_every_node_an_edge_touches(space: search_spaces.SearchSpace) -> None:
    for sketch in space.sketches(space.sample(random.Random(9))):
        assert len(set(sketch.nodes)) == len(sketch.nodes) and 1 <= sketch.inputs < len(sketch.nodes)
        assert {n for u, v, _ in sketch.edges for n in (u, v)} <= set(sketch.nodes)
        assert set(sketch.node_ops) <= set(sketch.nodes)


def test_the_published_recipe_builds_the_deployed_network(space: search_spaces.SearchSpace) -> None:
    """``training_options`` turns the space's recipe into build options its ``build`` accepts (meta device)."""
    recipe = {"channels": None, "layers": None, "drop_path": 0.0, "aux_weight": 0.0, **space.training_recipe()}
    assert set(space.network_knobs) <= {"channels", "layers", "drop_path", "aux_weight"}
    with torch.device("meta"):
        for inference in (False, True):
            model = space.build(space.sample(random.Random(10)), 10, **space.training_options(recipe, inference))
            assert sum(p.numel() for p in model.parameters()) > 0


def test_invalid_graphs_are_rejected(space: search_spaces.SearchSpace) -> None:
    g = space.sample(random.Random(8))
    bad_op = g.copy()
    labelled = [e for e in g.edges if "op" in g.edges[e]]
    if labelled:
        bad_op.edges[labelled[0]]["op"] = "conv_7x7"
    else:
        bad_op.nodes[next(n for n in g if "op" in g.nodes[n])]["op"] = "conv_7x7"
    for bad in (bad_op, nx.DiGraph()):
        assert not space.is_valid(bad)
        with pytest.raises(GenotypeError):
            space.to_str(bad)
        with pytest.raises(GenotypeError):
            space.mutate(bad, random.Random(0))


@pytest.mark.parametrize("text", ["", "   ", "hello", "|||", "normal=;reduce="])
def test_garbage_strings_raise_a_one_line_genotype_error(space: search_spaces.SearchSpace, text: str) -> None:
    with pytest.raises(GenotypeError) as info:
        space.from_str(text)
    assert str(info.value).strip() and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["nb201", "darts"])
def test_garbage_strings_name_the_space(name: str) -> None:
    with pytest.raises(GenotypeError, match=name.replace("nb201", "NB-201").replace("darts", "DARTS")):
        search_spaces.get(name).from_str("hello")
