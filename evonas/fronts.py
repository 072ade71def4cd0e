"""Pareto fronts and their quality: dominance, the 2-D staircase, exact hypervolume, regret, HV ratio.

The one home of this logic for the search (its running front and hypervolume), the pictures
(the table's true front as a step line) and ``evonas show --truth`` (how good a run's front is
against a benchmark table). Pure Python: no numpy, no torch.

Quality of a front against a table, per cost. The front's cells and the table's cells are
(cost, true accuracy) points; the cost is minimised and the accuracy maximised.

- **Regret at a budget b**: the best true accuracy of any table cell with cost <= b, minus the best
  true accuracy of the front's cells with cost <= b (0: the front holds the best cell under b; None:
  the front has no cell under b).
- **Hypervolume ratio**: the area the front's points dominate, divided by the area the table's
  points dominate, both up to the same reference point (1: the front is as good as the true front).
  Reference policy (``reference_point``): the table's largest cost, so that every cell's cost counts,
  and the table's median true accuracy, so that cells worse than a typical cell add nothing and
  the ratio is not carried by the easy region of poor cells (a fixed floor like 85% would suit
  CIFAR-10 only; the median works for every dataset and table).
"""
from __future__ import annotations

import math
import statistics
from typing import Iterable, Sequence

#: (cost, true accuracy, anything else ...) of one cell.
Point = tuple
Vector = Sequence[float]


def dominates(a: Vector, b: Vector) -> bool:
    """``a`` is no worse than ``b`` in every objective and better in one (all minimised)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def staircase(points: Iterable[Point]) -> list[Point]:
    """The 2-D Pareto front of (cost: lower is better, accuracy: higher is better), cheapest first.

    A point stays when no cheaper-or-equal point is at least as accurate; of equal points the first
    (by cost, then accuracy, then input order) stays. Drawn as a step, it is the best accuracy
    reachable at each cost.
    """
    front: list[Point] = []
    best = -math.inf
    for point in sorted(points, key=lambda p: (p[0], -p[1])):
        if point[1] > best:
            front.append(point)
            best = point[1]
    return front


def hypervolume(points: Sequence[Vector], ref: Vector) -> float:
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


def best_under(points: Iterable[Point], budget: float) -> float | None:
    """The best accuracy of the (cost, accuracy) ``points`` with cost <= ``budget``; None if none is."""
    return max((p[1] for p in points if p[0] <= budget), default=None)


def regret(front: Sequence[Point], table: Sequence[Point], budgets: Iterable[float]) -> dict[float, float | None]:
    """Per budget: the table's best accuracy under it minus the front's (None: no front cell under it)."""
    out: dict[float, float | None] = {}
    for budget in budgets:
        best, found = best_under(table, budget), best_under(front, budget)
        out[budget] = None if best is None or found is None else best - found
    return out


def reference_point(table: Sequence[Point]) -> tuple[float, float]:
    """(the largest cost, the median accuracy) of all the table's (cost, accuracy) points (module docstring)."""
    if not table:
        raise ValueError("a reference point needs the table's cells")
    return max(p[0] for p in table), statistics.median(p[1] for p in table)


def accuracy_hypervolume(points: Iterable[Point], ref: tuple[float, float]) -> float:
    """Area dominated by (cost, accuracy) ``points`` up to ``ref`` = (cost, accuracy), cost minimised and
    accuracy maximised; points at or beyond the reference add nothing."""
    return hypervolume([(p[0], -p[1]) for p in staircase(points)], (ref[0], -ref[1]))


def hypervolume_ratio(front: Iterable[Point], table: Iterable[Point], ref: tuple[float, float]) -> float:
    """The front's hypervolume as a fraction of the table's (its true front is enough), both up to
    ``ref`` (``reference_point`` of all the table's points); 0 if the table dominates nothing there."""
    whole = accuracy_hypervolume(table, ref)
    return accuracy_hypervolume(front, ref) / whole if whole > 0 else 0.0


def default_budgets(costs: Iterable[float], count: int = 6) -> list[float]:
    """``count`` budgets evenly over the costs' range (cheapest, largest], two significant digits but
    the last, which is the largest cost itself (the unconstrained best)."""
    values = list(costs)
    lo, hi = min(values), max(values)
    inner = [float(f"{lo + (hi - lo) * k / count:.2g}") for k in range(1, count)]
    return sorted({*inner, hi})


def front_quality(front: Sequence[Point], table: Sequence[Point], budgets: Sequence[float] | None = None
                  ) -> dict[str, object]:
    """Regret per budget (``default_budgets`` of the table when None) and hypervolume ratio of the
    (cost, true accuracy) ``front`` against all the (cost, true accuracy) points of ``table``."""
    budgets = list(budgets) if budgets else default_budgets(p[0] for p in table)
    true = staircase(table)
    ref = reference_point(table)
    regrets = regret(front, true, budgets)
    return {"budgets": budgets, "regret": [regrets[b] for b in budgets], "hv_ratio": hypervolume_ratio(front, true, ref),
            "reference": list(ref), "true_front_size": len(true)}
