"""Rank agreement between scores and true accuracy, over the whole ranking and at its head.

A user picks one architecture, usually under a size budget, so besides Spearman and Kendall
the numbers that matter are about the top of the ranking (precision of the top 1/5/10%,
nDCG@k, the true accuracy of the top-ranked cell) and about ranking cells of similar size
(Spearman inside each quintile of parameter count). Failed scores (NaN/inf) are left out of
every statistic and counted separately; ties in scores or truth are broken by position
(earlier cell first), so every value is deterministic.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
from scipy.stats import kendalltau, rankdata, spearmanr

TOP_FRACTION = 0.1
#: The head fractions reported for every estimator: key ``top<p>_precision`` for p percent.
TOP_FRACTIONS = (0.01, 0.05, 0.1)
NDCG_K = 100
#: Parameter-count buckets of the within-size Spearman (quintiles).
SIZE_BUCKETS = 5
#: What each statistic means, written into summary.json beside the numbers.
CONVENTIONS = {
    "failed": "cells whose score is NaN/inf; left out of every statistic below",
    "top<p>_precision": "share of the truly best p% of cells (at least one) among the estimator's best p%",
    f"ndcg{NDCG_K}": f"nDCG@{NDCG_K}; relevance by true rank: the best cell {NDCG_K}, the {NDCG_K}-th best 1, "
                     "the others 0",
    "top_ranked_truth": "true accuracy of the estimator's top-ranked cell; _rank: its rank in truth (1 = best)",
    "size_bucket_spearman": f"mean Spearman inside {SIZE_BUCKETS} buckets of equal cell count by deployed-network "
                            "parameters (equal sizes share a bucket); size_buckets: each bucket",
    "ties": "broken by position, earlier cell first",
    "std": "with several seeds: each statistic's sample standard deviation over seeds (the value is their mean)",
}


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


def _best_first(values: np.ndarray) -> np.ndarray:
    """Positions from the highest value down; equal values keep their order."""
    return np.argsort(-values, kind="stable")


def top_precision(scores: Sequence[float], truth: Sequence[float], fraction: float = TOP_FRACTION) -> float:
    """Fraction of the truly best ``fraction`` of cells that the estimator's best ``fraction`` contains.

    Both sets have the same size k, so this is precision and recall at once.
    """
    s, t = valid(scores, truth)
    if len(s) == 0:
        return math.nan
    k = top_k(len(s), fraction)
    return len(set(_best_first(s)[:k].tolist()) & set(_best_first(t)[:k].tolist())) / k


def ndcg(scores: Sequence[float], truth: Sequence[float], k: int = NDCG_K) -> float:
    """nDCG@k with rank relevance: the truly best cell has gain k, the k-th best gain 1, the rest 0.

    So 1.0 means the estimator's k best are the true k best in their true order, and a cell
    outside the true top k earns nothing wherever it is placed. Rank gains (not accuracies)
    keep the value sensitive where accuracies crowd together at the top. k is capped at the
    number of scored cells.
    """
    s, t = valid(scores, truth)
    if len(s) == 0:
        return math.nan
    k = min(k, len(s))
    gain = np.zeros(len(s))
    gain[_best_first(t)[:k]] = np.arange(k, 0, -1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    return float(gain[_best_first(s)[:k]] @ discount) / float(np.arange(k, 0, -1) @ discount)


def top_ranked(scores: Sequence[float], truth: Sequence[float]) -> tuple[float, int | None]:
    """The true accuracy of the estimator's top-ranked cell and its rank in truth (1 = truly best).

    The rank counts the scored cells with a strictly higher accuracy, plus one.
    """
    s, t = valid(scores, truth)
    if len(s) == 0:
        return math.nan, None
    best = float(t[_best_first(s)[0]])
    return best, int((t > best).sum()) + 1


def size_buckets(params: Sequence[float], buckets: int = SIZE_BUCKETS) -> np.ndarray:
    """Bucket 0..buckets-1 of each cell by its rank in parameter count; -1 where params is not finite.

    Cells of equal size share their average rank, hence always a bucket, so buckets can be
    unequal in a space with few distinct sizes.
    """
    p = np.asarray(params, dtype=float)
    out = np.full(len(p), -1, dtype=int)
    keep = np.isfinite(p)
    if keep.any():
        ranks = rankdata(p[keep])  # 1..n, ties averaged
        out[keep] = np.minimum(((ranks - 0.5) / keep.sum() * buckets).astype(int), buckets - 1)
    return out


def bucket_spearman(scores: Sequence[float], truth: Sequence[float], params: Sequence[float],
                    buckets: int = SIZE_BUCKETS, which: np.ndarray | None = None) -> dict[str, Any]:
    """Spearman inside each parameter-count bucket and its unweighted mean over the defined buckets.

    How well the estimator ranks cells of similar size, which a size proxy cannot do. A bucket's
    ``n`` counts all its cells, failed ones included; its Spearman leaves those out. ``which``:
    ``size_buckets(params, buckets)`` when the caller ranks many scores of the same cells.
    """
    s, t, p = (np.asarray(v, dtype=float) for v in (scores, truth, params))
    if not s.shape == t.shape == p.shape:
        raise ValueError(f"{len(s)} scores, {len(t)} truth values and {len(p)} parameter counts")
    which = size_buckets(p, buckets) if which is None else which
    per_bucket = []
    for b in range(buckets):
        inside = which == b
        if not inside.any():
            continue
        per_bucket.append({"bucket": b, "params": [float(p[inside].min()), float(p[inside].max())],
                           "n": int(inside.sum()), "spearman": spearman(s[inside], t[inside])})
    defined = [b["spearman"] for b in per_bucket if math.isfinite(b["spearman"])]
    return {"mean": float(np.mean(defined)) if defined else math.nan, "buckets": per_bucket}


def size_residual(scores: Sequence[float], params: Sequence[float], fit: Sequence[bool]) -> np.ndarray:
    """What a positive score says beyond size: ``log(score)`` minus its least-squares line in ``log(params)``.

    The line is fit on the ``fit`` cells only (a selection sample), then applied to every cell.
    A zero score (a dead cell) stays below every other cell; a failed one stays NaN.
    """
    s, p = np.asarray(scores, dtype=float), np.asarray(params, dtype=float)
    mask = np.asarray(fit, dtype=bool)
    if np.any(s < 0) or np.any(p <= 0):
        raise ValueError("size_residual needs non-negative scores and positive parameter counts")
    with np.errstate(divide="ignore"):
        y, x = np.log(s), np.log(p)
    usable = mask & np.isfinite(y) & np.isfinite(x)
    if usable.sum() < 2:
        raise ValueError(f"size_residual needs at least two positive fit scores, not {int(usable.sum())}")
    slope, intercept = np.polyfit(x[usable], y[usable], 1)
    residual = y - (slope * x + intercept)
    alive = np.isfinite(residual)
    residual[s == 0] = residual[alive].min() - 1.0 if alive.any() else 0.0
    return residual


def head_metrics(scores: Sequence[float], truth: Sequence[float],
                 params: Sequence[float] | None = None) -> dict[str, Any]:
    """Every ranking statistic of one estimator over one set of cells (within-size ones need ``params``)."""
    accuracy, rank = top_ranked(scores, truth)
    out: dict[str, Any] = {"spearman": spearman(scores, truth), "kendall": kendall(scores, truth)}
    for fraction in TOP_FRACTIONS:
        out[f"top{round(fraction * 100)}_precision"] = top_precision(scores, truth, fraction)
    out.update({f"ndcg{NDCG_K}": ndcg(scores, truth), "top_ranked_truth": accuracy, "top_ranked_truth_rank": rank})
    if params is not None:
        within = bucket_spearman(scores, truth, params)
        out.update({"size_bucket_spearman": within["mean"], "size_buckets": within["buckets"]})
    return out


def summarize(scores: Sequence[float], truth: Sequence[float], seconds: Sequence[float],
              params: Sequence[float] | None = None) -> dict[str, Any]:
    """The consistency numbers of one estimator over one set of cells, with its failure count and time."""
    s = np.asarray(scores, dtype=float)
    failed = int((~np.isfinite(s)).sum())
    return {
        "n": len(s),
        "scored": len(s) - failed,
        "failed": failed,
        **head_metrics(scores, truth, params),
        "seconds_per_cell": float(np.mean(seconds)) if len(seconds) else math.nan,
    }


def over_seeds(per_seed: Sequence[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and spread (sample standard deviation) over seeds of every numeric statistic.

    A statistic undefined (NaN or None) for one seed is undefined over the seeds, so a mean
    never hides a seed where the estimator failed; the spread of a single seed is NaN.
    """
    keys = [k for k, v in per_seed[0].items() if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))]
    mean, spread = {}, {}
    for key in keys:
        values = np.array([math.nan if s.get(key) is None else float(s[key]) for s in per_seed])
        mean[key] = float(values.mean())
        spread[key] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return mean, spread
