"""Cell drawings: both spaces render to PNG and SVG, dead edges look dead, bad input is a clean error."""
from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import pytest

import search_spaces
from evonas.drawing import CONCAT, cell_drawings, draw_genotype
from evonas.errors import EvonasError
from search_spaces import GenotypeError
from search_spaces.nb201 import NB201Cell

#: Node 1 reads node 0 through a conv but feeds nothing (both its out-edges are none).
NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
            "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
            "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _op_labels(space: str, genotype: str) -> list[str]:
    return [e.op for cell in cell_drawings(space, genotype) for e in cell.edges if e.op != CONCAT]


@pytest.mark.parametrize("suffix", [".png", ".svg"])
@pytest.mark.parametrize("space, genotype", [("nb201", NB201), ("darts", DARTS_V2)])
def test_both_spaces_render(tmp_path: Path, space: str, genotype: str, suffix: str) -> None:
    path = draw_genotype(space, genotype, tmp_path / "sub" / f"cell{suffix}")
    assert path == tmp_path / "sub" / f"cell{suffix}"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    if suffix == ".png":
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        height, width = matplotlib.image.imread(path).shape[:2]
        assert width > height > 200
    else:
        root = ET.parse(path).getroot()
        assert root.tag.endswith("svg")
        texts = ["".join(el.itertext()).strip() for el in root.iter() if el.tag.endswith("}text")]
        labels = _op_labels(space, genotype)
        assert sorted(t for t in texts if t in set(labels)) == sorted(labels)  # one text per edge label


def test_dead_nb201_edges_are_drawn_differently() -> None:
    edges = {(e.source, e.target): e for e in cell_drawings("nb201", NB201)[0].edges}
    dead = {("0", "1"), ("1", "2"), ("1", "3")}
    assert {edge for edge, e in edges.items() if not e.live} == dead
    live_looks = {(e.color, e.linestyle) for edge, e in edges.items() if edge not in dead}
    dead_looks = {(edges[edge].color, edges[edge].linestyle) for edge in dead}
    assert len(live_looks) == len(dead_looks) == 1 and live_looks != dead_looks
    assert dead_looks.pop()[1] == "dashed" and live_looks.pop()[1] == "solid"


def test_nb201_liveness_is_what_the_network_computes() -> None:
    space, rng = search_spaces.get("nb201"), random.Random(0)
    for _ in range(200):
        g = space.sample(rng)
        drawn = {(e.source, e.target) for e in cell_drawings("nb201", space.to_str(g))[0].edges if e.live}
        assert drawn == {(str(i), str(j)) for i, j, *_ in NB201Cell(g, 1).plan}, space.to_str(g)


def test_darts_draws_both_cells_with_inputs_and_concat() -> None:
    cells = cell_drawings("darts", DARTS_V2)
    assert [c.title for c in cells] == ["normal cell", "reduction cell"]
    for cell in cells:
        assert cell.nodes == ("c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}")
        ops = [e for e in cell.edges if e.op != CONCAT]
        concat = [(e.source, e.target) for e in cell.edges if e.op == CONCAT]
        assert len(ops) == 8 and all(e.live for e in ops)  # every DARTS node feeds the concat output
        assert concat == [(n, "c_{k}") for n in ("0", "1", "2", "3")]
    assert [(e.source, e.target, e.op) for e in cells[0].edges[:2]] == [
        ("c_{k-2}", "0", "sep_conv_3x3"), ("c_{k-1}", "0", "sep_conv_3x3")]


def test_bad_suffix_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(EvonasError, match=r"\.png or \.svg"):
        draw_genotype("nb201", NB201, tmp_path / "cell.jpg")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("space, genotype", [("nb201", "|nor_conv_3x3~0|+|conv~0|"), ("darts", "normal=sep3~0")])
def test_malformed_genotype_is_the_space_error(tmp_path: Path, space: str, genotype: str) -> None:
    with pytest.raises(GenotypeError):
        draw_genotype(space, genotype, tmp_path / "cell.png")
    assert not any(tmp_path.iterdir())
