"""evonas.fronts: dominance, staircase, hypervolume, regret and hypervolume ratio on hand-checked cases."""
from __future__ import annotations

import pytest

from evonas.fronts import (
    accuracy_hypervolume,
    best_under,
    default_budgets,
    front_quality,
    dominates,
    hypervolume,
    hypervolume_ratio,
    reference_point,
    regret,
    staircase,
)

#: (cost, true accuracy) of a small table: its true front is (1, 80), (2, 90), (4, 95).
TABLE = [(1.0, 80.0), (2.0, 90.0), (3.0, 85.0), (4.0, 95.0), (5.0, 70.0), (2.0, 60.0)]


def test_dominates_needs_one_strict_improvement():
    assert dominates((1, 2), (1, 3))
    assert not dominates((1, 3), (1, 3))
    assert not dominates((0, 4), (1, 3))


def test_staircase_keeps_the_best_accuracy_at_each_cost():
    assert staircase(TABLE) == [(1.0, 80.0), (2.0, 90.0), (4.0, 95.0)]
    assert staircase([(1, 5, "a"), (1, 5, "b")]) == [(1, 5, "a")]  # of equal points the first


def test_hypervolume_of_a_two_point_front():
    # (1, 3) and (2, 1) under (4, 4): the union of a 3x1 and a 2x3 box overlapping in 2x1: 3 + 6 - 2 = 7
    assert hypervolume([(1, 3), (2, 1)], (4, 4)) == pytest.approx(7.0)
    assert hypervolume([(1, 3), (2, 1), (3, 3)], (4, 4)) == pytest.approx(7.0)  # a dominated point adds nothing
    assert hypervolume([(5, 1)], (4, 4)) == 0.0


def test_regret_per_budget():
    front = [(1.0, 80.0), (3.0, 85.0)]
    # budget 1: best 80, front 80 -> 0; budget 2.5: best 90, front 80 -> 10; budget 4: best 95, front 85 -> 10
    assert regret(front, TABLE, [0.5, 1.0, 2.5, 4.0]) == {0.5: None, 1.0: 0.0, 2.5: 10.0, 4.0: 10.0}
    assert best_under(TABLE, 3.0) == 90.0


def test_reference_point_is_largest_cost_and_median_accuracy():
    assert reference_point(TABLE) == (5.0, 82.5)


def test_hypervolume_ratio_against_the_true_front():
    ref = (5.0, 80.0)
    # true front above 80% up to cost 5: (2..4) x 10 + (4..5) x 15 = 20 + 15 = 35
    assert accuracy_hypervolume(TABLE, ref) == pytest.approx(35.0)
    # a front of (3, 85) only: (3..5) x 5 = 10
    assert hypervolume_ratio([(3.0, 85.0)], TABLE, ref) == pytest.approx(10 / 35)
    assert hypervolume_ratio(staircase(TABLE), TABLE, ref) == pytest.approx(1.0)
    assert hypervolume_ratio([(1.0, 70.0)], TABLE, ref) == 0.0


def test_default_budgets_span_the_range_and_end_at_the_largest_cost():
    assert default_budgets([0.1, 0.4, 1.3], count=3) == [0.5, 0.9, 1.3]


def test_front_quality_against_all_cells():
    q = front_quality([(1.0, 80.0), (3.0, 85.0)], TABLE, [1.0, 4.0])
    assert q["regret"] == [0.0, 10.0]
    assert q["reference"] == [5.0, 82.5]
    # true front above 82.5 up to 5: (2..4) x 7.5 + (4..5) x 12.5 = 27.5; the front: (3..5) x 2.5 = 5
    assert q["hv_ratio"] == pytest.approx(5 / 27.5)
    assert q["true_front_size"] == 3
