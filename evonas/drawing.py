"""Pictures of genotypes: each cell as a left-to-right graph with its ops on the edges.

Node positions come from networkx, drawing from matplotlib through a standalone ``Figure``
(Agg canvas, never pyplot), so drawing neither needs a display nor changes the caller's
matplotlib backend. Edges that compute nothing (an NB-201 ``none`` edge, or an edge whose
result cannot reach the cell output) are grey and dashed, so a cell's effective shape is
visible at a glance.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import matplotlib
import networkx as nx
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import search_spaces
from search_spaces.base import CellSketch
from evonas.errors import EvonasError
from evonas.runs import replacing

#: File suffix -> matplotlib format.
FORMATS: dict[str, str] = {".png": "png", ".svg": "svg"}
#: The pseudo-op of edges into a concatenated output (DARTS): drawn blue, without a label.
CONCAT = "concat"

_LIVE = ("black", "solid")
_DEAD = ("0.6", "dashed")
_CONCAT = ("tab:blue", "solid")
_NODE_COLORS = {"input": "#cde8c8", "inner": "#d6e4f5", "output": "#f8dcb4"}
_NODE_SIZE = 700
_ARC = 0.35  # arc3 bend of edges that skip nodes; enough to clear the nodes in between
_INCHES_PER_STEP = 1.5  # node spacing that leaves room for the longest op name between two nodes


@dataclass(frozen=True)
class EdgeStyle:
    """How one edge is drawn; ``live`` is False when the edge cannot affect the cell output."""

    source: str
    target: str
    op: str
    live: bool

    @property
    def color(self) -> str:
        return self._look[0]

    @property
    def linestyle(self) -> str:
        return self._look[1]

    @property
    def _look(self) -> tuple[str, str]:
        return _CONCAT if self.op == CONCAT else _LIVE if self.live else _DEAD


@dataclass(frozen=True)
class CellDrawing:
    """One cell to draw: nodes in left-to-right order (inputs first, output last) and styled edges."""

    title: str
    nodes: tuple[str, ...]
    inputs: int
    edges: tuple[EdgeStyle, ...]
    node_ops: Mapping[str, str] = field(default_factory=dict)
    dead: frozenset[str] = frozenset()


def cell_drawings(space: str, genotype: str) -> list[CellDrawing]:
    """The cells of ``genotype`` as they will be drawn (the space's ``sketches``); raises its ``GenotypeError``."""
    sp = search_spaces.get(space)
    return [_styled(sketch) for sketch in sp.sketches(sp.from_str(genotype))]


def _styled(sketch: CellSketch) -> CellDrawing:
    """Mark each edge live when its op computes something and its target feeds the output."""
    nodes = sketch.nodes
    computing = nx.DiGraph((u, v) for u, v, op in sketch.edges if op != "none" and u not in sketch.dead)
    computing.add_node(nodes[-1])
    feeds_output = nx.ancestors(computing, nodes[-1]) | {nodes[-1]}
    styled = tuple(EdgeStyle(u, v, op, op != "none" and v in feeds_output and u not in sketch.dead)
                   for u, v, op in sketch.edges)
    return CellDrawing(sketch.title, nodes, sketch.inputs, styled, dict(sketch.node_ops), frozenset(sketch.dead))


def draw_genotype(space: str, genotype: str, path: str | Path) -> Path:
    """Draw ``genotype``'s cell(s) to ``path`` (.png or .svg), replacing the file atomically."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise EvonasError(f"cannot draw to {path}: use a file name ending in {' or '.join(FORMATS)}")
    fig = genotype_figure(space, genotype)
    with replacing(path) as tmp, matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
    return path


def genotype_figure(space: str, genotype: str) -> Figure:
    """The figure of ``genotype``'s cell(s), for a file or an embedded picture."""
    sp = search_spaces.get(space)
    g = sp.from_str(genotype)
    layouts = [_Layout(_styled(sketch)) for sketch in sp.sketches(g)]
    # Size the figure from the data extents so one data unit (one node step) has the same inches
    # in every drawing: op names then fit between neighbouring nodes whatever the cell.
    width = sum(layout.xlim[1] - layout.xlim[0] for layout in layouts) * _INCHES_PER_STEP
    height = max(layout.ylim[1] - layout.ylim[0] for layout in layouts) * _INCHES_PER_STEP + 1.2
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    margins = {"left": 0, "right": 1, "wspace": 0, "top": 1 - 0.8 / height, "bottom": 0.4 / height}
    for ax, layout in zip(fig.subplots(1, len(layouts), squeeze=False, gridspec_kw=margins)[0], layouts):
        layout.draw(ax)
    fig.suptitle(f"{space}: {sp.to_str(g)}", fontsize=8)
    fig.text(0.5, 0.01, "grey dashed: computes nothing (a none op, or its result cannot reach the output)",
             ha="center", fontsize=8, color=_DEAD[0])
    return fig


class _Layout:
    """A cell's nodes on a line (networkx multipartite layout, one node step = one data unit).

    Edges between neighbours are straight; longer ones arc above or below the line, sides
    alternating by source so that two edges into one node from neighbouring sources separate.
    Concat edges (unlabelled) stay low below the line.
    """

    def __init__(self, cell: CellDrawing) -> None:
        self.cell = cell
        self.graph = nx.DiGraph()
        self.graph.add_nodes_from((name, {"layer": i}) for i, name in enumerate(cell.nodes))
        self.graph.add_edges_from((e.source, e.target) for e in cell.edges)
        self.pos = nx.multipartite_layout(self.graph, subset_key="layer", scale=(len(cell.nodes) - 1) / 2)
        index = {name: i for i, name in enumerate(cell.nodes)}
        self.rad: dict[EdgeStyle, float] = {}
        self.apex: dict[EdgeStyle, tuple[float, float]] = {}
        for e in cell.edges:
            start, end = index[e.source], index[e.target]
            rad = (0.0 if end - start == 1 else _ARC / 2 if e.op == CONCAT
                   else -_ARC if start % 2 == 0 else _ARC)
            (x1, y1), (x2, y2) = self.pos[e.source], self.pos[e.target]
            self.rad[e] = rad
            # Midpoint of matplotlib's arc3 Bezier (exact in data units because the aspect is equal).
            self.apex[e] = ((x1 + x2) / 2 + rad * (y2 - y1) / 2, (y1 + y2) / 2 - rad * (x2 - x1) / 2)
        xs, ys = zip(*(tuple(p) for p in self.pos.values()), *self.apex.values())
        self.xlim = (min(xs) - 0.6, max(xs) + 0.6)
        self.ylim = (min(ys) - 0.35, max(ys) + 0.35)

    def draw(self, ax: Axes) -> None:
        cell, g, pos = self.cell, self.graph, self.pos
        kinds = ["input" if i < cell.inputs else "output" if i == len(cell.nodes) - 1 else "inner"
                 for i in range(len(cell.nodes))]
        nx.draw_networkx_nodes(g, pos, ax=ax, nodelist=list(cell.nodes), node_size=_NODE_SIZE,
                               edgecolors="black", node_color=[_NODE_COLORS[k] for k in kinds])
        nx.draw_networkx_labels(g, pos, ax=ax, font_size=10,
                                labels={n: f"${n}$" if n.startswith("c_") else n for n in cell.nodes})
        for n, op in cell.node_ops.items():  # ops on vertices (NAS-Bench-101): written under the node
            x, y = pos[n]
            ax.text(x, y - 0.22, op, fontsize=7, ha="center", va="top",
                    color=_DEAD[0] if n in cell.dead else "black")
        for e in cell.edges:
            nx.draw_networkx_edges(g, pos, ax=ax, edgelist=[(e.source, e.target)], arrows=True, arrowsize=12,
                                   node_size=_NODE_SIZE, width=1.6 if e.live else 1.0, edge_color=e.color,
                                   style=e.linestyle, connectionstyle=f"arc3,rad={self.rad[e]}")
            if e.op and e.op != CONCAT:
                ax.text(*self.apex[e], e.op, color=e.color, fontsize=8, ha="center", va="center", zorder=1.5,
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"})
        ax.set_xlim(*self.xlim)
        ax.set_ylim(*self.ylim)
        ax.set_aspect("equal")
        ax.set_title(cell.title, fontsize=10)
        ax.axis("off")
