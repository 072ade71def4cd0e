"""Behaviour every search space shares: sampling, text round trip, mutation, building, training step."""
from __future__ import annotations

import random

import networkx as nx
import pytest
import torch

import search_spaces
from search_spaces import GenotypeError, UnknownSpaceError

#: Small networks so 50 forward/backward passes per space stay fast on one thread.
SMALL = {"nb201": {"channels": 4, "cells_per_stage": 1}, "darts": {"channels": 4, "layers": 3}}
SPACES = sorted(SMALL)


@pytest.fixture(params=SPACES)
def space(request: pytest.FixtureRequest) -> search_spaces.SearchSpace:
    return search_spaces.get(request.param)


def test_registry_lists_both_spaces_and_rejects_unknown() -> None:
    assert set(SPACES) <= set(search_spaces.available())
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
    assert len({space.to_str(space.sample(random.Random(s))) for s in range(20)}) == 20


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
        model = space.build(space.sample(rng), 10, **SMALL[space.name])
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
        return space.build(g, 10, **SMALL[space.name]).state_dict()

    a, b, c = weights(7), weights(7), weights(8)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_depth_units_are_the_searchable_modules_in_forward_order(space: search_spaces.SearchSpace) -> None:
    model = space.build(space.sample(random.Random(5)), 10, **SMALL[space.name])
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
    for *_, op in g.edges(data="op"):
        if op != "none":
            assert op in text


def test_invalid_graphs_are_rejected(space: search_spaces.SearchSpace) -> None:
    g = space.sample(random.Random(8))
    broken = g.copy()
    broken.remove_edge(*next(iter(g.edges)))
    bad_op = g.copy()
    u, v = next(iter(g.edges))
    bad_op.edges[u, v]["op"] = "conv_7x7"
    for bad in (broken, bad_op, nx.DiGraph()):
        assert not space.is_valid(bad)
        with pytest.raises(GenotypeError):
            space.to_str(bad)
        with pytest.raises(GenotypeError):
            space.mutate(bad, random.Random(0))


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("text", ["", "   ", "hello", "|||", "normal=;reduce="])
def test_garbage_strings_raise_genotype_error(name: str, text: str) -> None:
    with pytest.raises(GenotypeError, match=name.replace("nb201", "NB-201").replace("darts", "DARTS")):
        search_spaces.get(name).from_str(text)
