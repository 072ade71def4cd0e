"""The front's PNG: score (or true accuracy) against each cost; the measures live in ``evonas.fronts``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evonas.fronts import staircase
from evonas.runs import replacing
from evonas.settings import cost_unit


def plot_front(path: Path, cells: list[dict[str, Any]], front: list[dict[str, Any]], score_name: str,
               cost_names: Sequence[str], truth: dict[str, float] | None = None,
               true_front: Sequence[Mapping[str, Any] | Sequence[float]] | None = None) -> None:
    """Score (or, with ``truth``, true accuracy) against each cost: every scored cell and the front.

    ``true_front`` (with ``truth``): cells of a benchmark table, each ``{"costs", "accuracy"}`` or a
    tuple (one value per cost of ``cost_names``, accuracy); per cost, their (cost, accuracy) front is
    drawn as a step line, the best true accuracy the table reaches at each cost.
    """
    fig = Figure(figsize=(5.5 * len(cost_names), 4.2))
    FigureCanvasAgg(fig)
    label = "true accuracy (%)" if truth is not None else score_name  # even when no evaluated cell is in the table
    value = (lambda c: truth.get(c["genotype"], float("nan"))) if truth is not None else (lambda c: c["score"])
    for index, name in enumerate(cost_names, 1):
        ax = fig.add_subplot(1, len(cost_names), index)
        ax.scatter([c["costs"][name] for c in cells], [value(c) for c in cells], s=8, c="0.7",
                   label=f"evaluated ({len(cells)})")
        if true_front:
            steps = true_steps(true_front, cost_names, name)
            ax.step([x for x, _ in steps], [y for _, y in steps], where="post", c="tab:blue", lw=1.2,
                    label=f"true front (table, {len(steps)})")
        ordered = sorted(front, key=lambda c: c["costs"][name])
        ax.plot([c["costs"][name] for c in ordered], [value(c) for c in ordered], "o-", c="tab:red", ms=4,
                label=f"front ({len(front)})")
        ax.set_xlabel(f"{name} ({cost_unit(name)})" if cost_unit(name) else name)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def true_steps(true_front: Sequence[Mapping[str, Any] | Sequence[float]], cost_names: Sequence[str],
               name: str) -> list[tuple[float, float]]:
    """The (cost ``name``, accuracy) front of ``true_front``'s cells, cheapest first (``plot_front``'s step line)."""
    index = list(cost_names).index(name)
    points = ((c["costs"][name], c["accuracy"]) if isinstance(c, Mapping) else (c[index], c[-1]) for c in true_front)
    return [(float(x), float(y)) for x, y, *_ in staircase(p for p in points if p[0] >= 0)]  # < 0: unmeasured
