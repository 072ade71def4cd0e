"""Pareto-front measures and pictures: hypervolume (any number of objectives) and the front's PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evonas.runs import dominates, replacing
from evonas.settings import COSTS

Point = Sequence[float]


def hypervolume(points: Sequence[Point], ref: Point) -> float:
    """Volume dominated by ``points`` (all objectives minimised) and bounded by ``ref``.

    Exact, by slicing along the last objective and recursing; points not strictly better than
    ``ref`` in every objective add nothing. Fronts here have tens of points, so this is instant.
    """
    inside = [tuple(p) for p in points if all(x < r for x, r in zip(p, ref))]
    front = sorted({p for p in inside if not any(dominates(q, p) for q in inside)}, key=lambda p: p[-1])
    if not front:
        return 0.0
    if len(ref) == 1:
        return ref[0] - front[0][0]
    volume = 0.0
    for i, p in enumerate(front):
        upper = front[i + 1][-1] if i + 1 < len(front) else ref[-1]
        if upper > p[-1]:
            volume += (upper - p[-1]) * hypervolume([q[:-1] for q in front[: i + 1]], ref[:-1])
    return volume


def plot_front(path: Path, cells: list[dict[str, Any]], front: list[dict[str, Any]], score_name: str,
               cost_names: Sequence[str], truth: dict[str, float] | None = None) -> None:
    """Score (or, with ``truth``, true accuracy) against each cost: every scored cell and the front."""
    fig = Figure(figsize=(5.5 * len(cost_names), 4.2))
    FigureCanvasAgg(fig)
    label = "true accuracy (%)" if truth else score_name
    value = (lambda c: truth.get(c["genotype"], float("nan"))) if truth else (lambda c: c["score"])
    for index, name in enumerate(cost_names, 1):
        ax = fig.add_subplot(1, len(cost_names), index)
        ax.scatter([c["costs"][name] for c in cells], [value(c) for c in cells], s=8, c="0.7",
                   label=f"evaluated ({len(cells)})")
        ordered = sorted(front, key=lambda c: c["costs"][name])
        ax.plot([c["costs"][name] for c in ordered], [value(c) for c in ordered], "o-", c="tab:red", ms=4,
                label=f"front ({len(front)})")
        ax.set_xlabel(f"{name} ({COSTS[name]})")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
