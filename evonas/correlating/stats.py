"""Rank agreement between scores and true accuracy: Spearman, Kendall, top-fraction precision.

Failed scores (NaN/inf) are left out of every statistic and counted separately.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
from scipy.stats import kendalltau, spearmanr

TOP_FRACTION = 0.1


def valid(scores: Sequence[float], truth: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Scores and truth with the failed (non-finite) scores dropped."""
    s = np.asarray(scores, dtype=float)
    t = np.asarray(truth, dtype=float)
    if s.shape != t.shape:
        raise ValueError(f"{len(s)} scores for {len(t)} truth values")
    keep = np.isfinite(s)
    return s[keep], t[keep]


def _rank_stat(func: Callable, scores: Sequence[float], truth: Sequence[float]) -> float:
    s, t = valid(scores, truth)
    if len(s) < 2:
        return math.nan
    with warnings.catch_warnings():  # constant input: scipy warns and returns NaN, which we keep
        warnings.simplefilter("ignore")
        return float(func(s, t).statistic)


def spearman(scores: Sequence[float], truth: Sequence[float]) -> float:
    """Spearman rho (ties get average ranks) over the finite scores; NaN if undefined."""

    return _rank_stat(spearmanr, scores, truth)


def kendall(scores: Sequence[float], truth: Sequence[float]) -> float:
    """Kendall tau-b over the finite scores; NaN if undefined."""

    return _rank_stat(kendalltau, scores, truth)


def top_k(n: int, fraction: float = TOP_FRACTION) -> int:
    """How many cells make up the top ``fraction`` of ``n`` (at least one)."""
    return max(1, round(n * fraction))


def top_precision(scores: Sequence[float], truth: Sequence[float], fraction: float = TOP_FRACTION) -> float:
    """Fraction of the truly best ``fraction`` of cells that the estimator's best ``fraction`` contains.

    Both sets have the same size k, so this is precision and recall at once. Ties are broken
    by position (earlier cell first) so the value is deterministic.
    """
    s, t = valid(scores, truth)
    if len(s) == 0:
        return math.nan
    k = top_k(len(s), fraction)
    best_by_score = set(np.argsort(-s, kind="stable")[:k].tolist())
    best_by_truth = set(np.argsort(-t, kind="stable")[:k].tolist())
    return len(best_by_score & best_by_truth) / k


def summarize(scores: Sequence[float], truth: Sequence[float], seconds: Sequence[float]) -> dict[str, Any]:
    """The consistency numbers of one estimator over one set of cells."""
    s = np.asarray(scores, dtype=float)
    failed = int((~np.isfinite(s)).sum())
    return {
        "n": len(s),
        "scored": len(s) - failed,
        "failed": failed,
        "spearman": spearman(scores, truth),
        "kendall": kendall(scores, truth),
        "top10_precision": top_precision(scores, truth),
        "seconds_per_cell": float(np.mean(seconds)) if len(seconds) else math.nan,
    }
