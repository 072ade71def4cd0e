"""Choosing a fitness from scores already stored: composites and size-aware scores, selected on half the cells.

A finished correlate folder holds every estimator's score of every cell, so candidate
fitnesses cost nothing to build: each single estimator, each one's residual after its trend in
parameter count (``stats.size_residual``, fit on the selection half) and every composite of up
to ``max_parts`` of them with part weights from ``WEIGHTS``. Composites are normalised with the
statistics ``resolve_scoring`` fixes on the calibration sample (what a live ``--estimator A+B``
uses), so a chosen composite scores a search exactly as it scored here. The cells are split in
two by a seeded draw over isomorphism classes (isomorphic cells never straddle the halves);
candidates are ordered on the selection half by the mean of their ranks on ``CRITERIA`` and
measured on the other half, where nothing was chosen.

Ranking ~1,500 composites cell by cell through ``Composite.combine`` would take minutes, so the
selection sums the parts' normalised columns (``Normalisation`` itself, per cell); every
composite that is reported is then recomputed through ``Composite.combine`` and must agree.
"""
from __future__ import annotations

import itertools
import math
import random
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

import search_spaces
from estimators.base import EstimatorResult
from evonas.correlating.folder import StoredFolder
from evonas.correlating.runner import EstimatorRun
from evonas.correlating.store import run_label
from evonas.correlating.stats import (
    bucket_spearman, head_metrics, size_buckets, size_residual, spearman, top_precision, top_ranked,
)
from evonas.errors import EvonasError
from evonas.scoring import estimator_class, resolve_scoring
from evonas.scoring.composite import RECOMMENDED, Normalisation, is_composite, parse_composite

#: Part weights tried in composites (ratios 1:1 and 1:2; all-2 is all-1 again).
WEIGHTS = (1.0, 2.0)
#: The selection objective: mean rank among the candidates of these statistics (higher is better).
CRITERIA = ("top1_precision", "top5_precision", "top_ranked_truth", "size_bucket_spearman")
#: A size-aware candidate's name: ``sweet after params``.
RESIDUAL = " after params"
#: Candidates shown by head rank besides the singles, the size-aware ones and the Spearman pick.
SHOWN = 5
#: Largest difference allowed between the summed normalised parts and ``Composite.combine``.
AGREE = 1e-9


def composite_specs(names: Sequence[str], max_parts: int = 2, weights: Sequence[float] = WEIGHTS) -> list[str]:
    """Every composite of 2 to ``max_parts`` of ``names`` with part weights from ``weights`` (not all equal
    unless all are the first weight: a composite whose weights are all 2 ranks as the one of all 1)."""
    specs = []
    for k in range(2, max_parts + 1):
        for parts in itertools.combinations(names, k):
            for combo in itertools.product(weights, repeat=k):
                if len(set(combo)) > 1 or combo[0] == weights[0]:
                    specs.append("+".join(n if w == 1.0 else f"{n}={w:g}" for n, w in zip(parts, combo)))
    return specs


def split_halves(groups: Sequence[str], seed: int) -> np.ndarray:
    """True for the selection half: half of the distinct groups (e.g. isomorphism classes), drawn by ``seed``."""
    distinct = sorted(set(groups))
    random.Random(seed).shuffle(distinct)
    chosen = set(distinct[: len(distinct) // 2])
    return np.array([g in chosen for g in groups])


def normalised(columns: Mapping[str, np.ndarray], norms: Mapping[str, Normalisation]) -> dict[str, np.ndarray]:
    """Each column through its part's ``Normalisation`` (log-CDF values); failed cells stay NaN."""
    return {name: np.array([norms[name](x) if math.isfinite(x) else math.nan for x in col])
            for name, col in columns.items() if name in norms}


def library_composite(spec: str, columns: Mapping[str, np.ndarray], settings: Mapping[str, dict],
                      norms: Mapping[str, Normalisation]) -> np.ndarray:
    """The composite's score of every cell exactly as ``Composite.combine`` makes it from the part scores."""
    cls = parse_composite(spec)
    composite = cls(parts=[{"name": n, "weight": w, "settings": settings[n], "normalisation": norms[n].to_dict()}
                           for n, w in cls.parts])
    out = []
    for i in range(len(next(iter(columns.values())))):
        results = {}
        for name in cls.names:
            x = float(columns[name][i])
            results[name] = EstimatorResult(x, 0.0) if math.isfinite(x) else EstimatorResult(None, 0.0, "failed", "nan")
        score = composite.combine(results, 0.0).score
        out.append(math.nan if score is None else score)
    return np.array(out)


def size_aware(columns: Mapping[str, np.ndarray], params: np.ndarray, select: np.ndarray) -> dict[str, np.ndarray]:
    """``<name> after params`` of every estimator whose scores are non-negative (a residual needs a log)."""
    out = {}
    for name, col in columns.items():
        finite = col[np.isfinite(col)]
        if name == "params" or len(finite) < 2 or finite.min() < 0 or is_composite(name):
            continue
        try:
            out[f"{name}{RESIDUAL}"] = size_residual(col, params, select)
        except ValueError:  # fewer than two positive scores on the selection half: no line to fit
            continue
    return out


def candidate_pool(columns: Mapping[str, np.ndarray], params: np.ndarray, select: np.ndarray,
                   parts: Mapping[str, np.ndarray], max_parts: int, weights: Sequence[float]) -> dict[str, np.ndarray]:
    """Every fitness as a score column: single, size-aware, composite (the parts' normalised weighted sum)."""
    pool = {**columns, **size_aware(columns, params, select)}
    for spec in composite_specs(list(parts), max_parts, weights):
        pool[spec] = sum(w * parts[n] for n, w in parse_composite(spec).parts)
    return pool


def _value(x: Any) -> float:
    return -math.inf if x is None or not math.isfinite(x) else float(x)


def order_by_head(stats: Mapping[str, Mapping[str, Any]], criteria: Sequence[str] = CRITERIA) -> list[str]:
    """Candidates best first by the mean of their ranks on ``criteria``; ties: fewer parts, then name."""
    names = list(stats)
    ranks = np.mean([rankdata([_value(stats[n][c]) for n in names]) for c in criteria], axis=0)
    return [names[i] for i in sorted(range(len(names)), key=lambda i: (-ranks[i], names[i].count("+"), names[i]))]


def selection_stats(scores: np.ndarray, truth: np.ndarray, params: np.ndarray, which: np.ndarray) -> dict[str, Any]:
    """The statistics the selection orders by (``CRITERIA``) and Spearman, as ``head_metrics`` gives them;
    ``which``: the cells' size buckets, computed once for all candidates."""
    accuracy, _ = top_ranked(scores, truth)
    return {"spearman": spearman(scores, truth), "top1_precision": top_precision(scores, truth, 0.01),
            "top5_precision": top_precision(scores, truth, 0.05), "top_ranked_truth": accuracy,
            "size_bucket_spearman": bucket_spearman(scores, truth, params, which=which)["mean"]}


def _split(pool_of: Any, truth: np.ndarray, params: np.ndarray, select: np.ndarray) -> dict[str, Any]:
    pool = pool_of(select)
    t, p = truth[select], params[select]
    which = size_buckets(p)
    stats = {n: selection_stats(col[select], t, p, which) for n, col in pool.items()}
    ranked = order_by_head(stats)
    by_spearman = max(stats, key=lambda n: (_value(stats[n]["spearman"]), -n.count("+")))
    singles = [n for n in stats if "+" not in n and not n.endswith(RESIDUAL)]
    best_single = max(singles, key=lambda n: _value(stats[n]["spearman"]))
    return {"pool": pool, "stats": stats, "ranked": ranked, "by_spearman": by_spearman, "best_single": best_single}


def check_options(max_parts: int, splits: int) -> None:
    """One-line errors for ``--select-parts`` and ``--select-splits`` (before anything is computed)."""
    if max_parts < 2:
        raise EvonasError(f"--select-parts must be at least 2 (a composite has two parts), not {max_parts}")
    if splits < 1:
        raise EvonasError(f"--select-splits must be at least 1, not {splits}")


def select_fitness(
    columns: Mapping[str, Sequence[float]],
    truth: Sequence[float],
    params: Sequence[float],
    groups: Sequence[str],
    norms: Mapping[str, Normalisation],
    settings: Mapping[str, dict],
    *,
    max_parts: int = 2,
    weights: Sequence[float] = WEIGHTS,
    splits: int = 1,
    fixed: Sequence[str] = (),
) -> dict[str, Any]:
    """Select a fitness on one half of the cells and measure it on the other, for split seeds 0..splits-1.

    ``columns``: each estimator's score per cell (NaN: failed); ``norms`` and ``settings``: those of
    the estimators that may be composite parts; ``fixed``: composites measured beside the picks on
    every split (e.g. the recommended ones), whether or not they are candidates. Returns the first
    split in full (shown candidates with their report-half statistics and head rank) and, per rule,
    what it picked on every split.
    """
    check_options(max_parts, splits)
    cols = {n: np.asarray(c, dtype=float) for n, c in columns.items()}
    t, p = np.asarray(truth, dtype=float), np.asarray(params, dtype=float)
    parts = normalised({n: c for n, c in cols.items() if n in norms}, norms)
    if len(parts) < 2:
        raise EvonasError(f"--select needs at least two single estimators to combine, not {', '.join(parts) or 'none'}")
    if len(set(groups)) < 2:
        raise EvonasError("--select needs cells of at least two isomorphism classes to split them in halves")

    def pool_of(select: np.ndarray) -> dict[str, np.ndarray]:
        return candidate_pool(cols, p, select, parts, max_parts, weights)

    rules: dict[str, list[dict[str, Any]]] = {"head objective": [], "Spearman": [], "best single (Spearman)": [],
                                              **{f"{name} (fixed)": [] for name in fixed}}
    first: dict[str, Any] = {}
    for seed in range(splits):
        select = split_halves(groups, seed)
        run = _split(pool_of, t, p, select)
        report = ~select
        for rule, name in zip(rules, (run["ranked"][0], run["by_spearman"], run["best_single"], *fixed)):
            col = _column(name, run["pool"], cols, settings, norms)
            metrics = head_metrics(col[report], t[report], p[report])
            rules[rule].append({"name": name, **{k: v for k, v in metrics.items() if k != "size_buckets"}})
        if seed == 0:
            first = _first_split(run, select, cols, t, p, settings, norms, fixed)
    return {"max_parts": max_parts, "weights": list(weights), "criteria": list(CRITERIA), **first, "splits": rules}


def _column(name: str, pool: Mapping[str, np.ndarray], columns: Mapping[str, np.ndarray],
            settings: Mapping[str, dict], norms: Mapping[str, Normalisation]) -> np.ndarray:
    """A candidate's column checked against the library, or a fixed composite's straight from it."""
    if name in pool:
        return _checked(name, pool[name], columns, settings, norms)
    return library_composite(name, columns, settings, norms)


def _checked(name: str, column: np.ndarray, columns: Mapping[str, np.ndarray], settings: Mapping[str, dict],
             norms: Mapping[str, Normalisation]) -> np.ndarray:
    """A candidate's column; a composite's recomputed by ``Composite.combine``, which the selection's sum must match."""
    if "+" not in name or name in columns:  # a single, or a composite the folder scored itself
        return column
    library = library_composite(name, columns, settings, norms)
    if not np.allclose(library, column, rtol=0, atol=AGREE, equal_nan=True):
        raise EvonasError(f"internal: the selection's sum for {name} disagrees with Composite.combine")
    return library


def _first_split(run: dict[str, Any], select: np.ndarray, columns: Mapping[str, np.ndarray], truth: np.ndarray,
                 params: np.ndarray, settings: Mapping[str, dict], norms: Mapping[str, Normalisation],
                 fixed: Sequence[str]) -> dict[str, Any]:
    report = ~select
    place = {n: i + 1 for i, n in enumerate(run["ranked"])}
    singles = [n for n in run["pool"] if "+" not in n]
    shown = list(dict.fromkeys([*run["ranked"][:SHOWN], run["by_spearman"], *fixed, *singles]))
    rows = []
    for name in shown:
        col = _column(name, run["pool"], columns, settings, norms)
        tag = "selected" if name == run["ranked"][0] else "best Spearman on selection" if name == run[
            "by_spearman"] else "fixed" if name in fixed else ""
        rows.append({"name": name, "tag": tag, "head_rank": place.get(name),
                     **head_metrics(col[report], truth[report], params[report])})
    return {"candidates": len(run["pool"]), "selection_cells": int(select.sum()), "report_cells": int(report.sum()),
            "selected": run["ranked"][0], "by_spearman": run["by_spearman"], "rows": rows}


def folder_normalisation(folder: StoredFolder, names: Sequence[str], seed: int) -> dict[str, Normalisation]:
    """Each estimator's composite normalisation under the folder's scoring settings and ``seed``.

    Read from the manifest when it holds them (an import, or an earlier ``--select``); otherwise
    ``resolve_scoring`` fixes them on the calibration sample (cached by evonas; minutes the first
    time) and they are written into the manifest, so the next ``--select`` reads them.
    """
    manifest, record = folder.manifest, folder.manifest.data["record"]
    stored = manifest.data.get("normalisation") or {}
    if all(run_label(n, seed) in stored for n in names):
        return {n: Normalisation.from_dict(n, stored[run_label(n, seed)]) for n in names}
    interval = record.get("interval")
    needs = any(estimator_class(n).needs_calibration for n in names)
    config = resolve_scoring(folder.space, "+".join(names), dataset=record["dataset"], data_dir=record.get("data_dir"),
                             batch_size=int(record["batch_size"]), seed=seed,
                             interval=tuple(interval) if interval and needs else None)
    norms = {}
    for part in config.estimator_settings["parts"]:
        if part["settings"] != manifest.data["runs"][run_label(part["name"], seed)]["settings"]:
            raise EvonasError(f"cannot normalise {part['name']} for --select: the folder scored it with settings "
                              f"{manifest.data['runs'][run_label(part['name'], seed)]['settings']}, this code "
                              f"resolves {part['settings']}")
        norms[part["name"]] = Normalisation.from_dict(part["name"], part["normalisation"])
    manifest.data["normalisation"] = {**stored, **{run_label(n, seed): v.to_dict() for n, v in norms.items()}}
    manifest.data["normalisation_reference"] = config.estimator_settings["reference"]
    manifest.write(folder.path)
    return norms


def folder_selection(folder: StoredFolder, *, max_parts: int = 2, splits: int = 1) -> dict[str, Any]:
    """``--select`` over a finished folder: its first seed's runs, halves by isomorphism class; the
    recommended composites (``evonas estimators``) whose parts the folder scored are measured beside."""
    check_options(max_parts, splits)
    seed = int(folder.manifest.data["seeds"][0])
    runs = [r for r in folder.runs if r.seed == seed and not r.name.startswith("table:")]
    singles = [r.name for r in runs if not is_composite(r.name)]
    norms = folder_normalisation(folder, singles, seed) if len(singles) >= 2 else {}
    space = search_spaces.get(folder.space)
    result = select_fitness({r.name: r.scores for r in runs}, [c.truth for c in folder.cells], folder.params,
                            [space.str_key(c.arch) for c in folder.cells], norms,
                            {r.name: r.settings for r in runs}, max_parts=max_parts, splits=splits,
                            fixed=[spec for spec in RECOMMENDED
                                   if set(parse_composite(spec).names) <= set(singles) and spec not in singles])
    return {"folder": str(folder.path), "space": folder.space, "seed": seed, "cells": len(folder.cells),
            "normalisation": folder.manifest.data.get("normalisation_reference") or "stored in the manifest",
            **result}


def composite_runs(folder: StoredFolder, specs: Sequence[str]) -> tuple[list[EstimatorRun], list[str]]:
    """``--composites``: each composite of the folder's estimators as a run of every seed, computed from the
    stored part scores by ``Composite.combine`` with ``folder_normalisation``; and the specs skipped because
    the folder lacks a part.

    A live composite scores its parts on the same seeded network a single estimator gets (each
    group on a fresh build), so this is the score it would give, without re-scoring (checked on
    NB-201 to 1e-15: ``benchmarks/consistency_all.md``). No time is measured (NaN).
    """
    singles = {r.name for r in folder.runs if not is_composite(r.name) and not r.name.startswith("table:")}
    runs, skipped = [], []
    for spec in specs:
        cls = parse_composite(spec)
        if not set(cls.names) <= singles:
            skipped.append(spec)
            continue
        for seed in folder.manifest.data["seeds"]:
            mine = {r.name: r for r in folder.runs if r.seed == seed and r.name in cls.names}
            norms = folder_normalisation(folder, list(cls.names), int(seed))
            scores = library_composite(spec, {n: np.asarray(r.scores) for n, r in mine.items()},
                                       {n: r.settings for n, r in mine.items()}, norms)
            run = EstimatorRun(cls.name, {"computed_from": "stored part scores", "parts": list(cls.names),
                                          "normalisation": {n: v.to_dict() for n, v in norms.items()}},
                               params=folder.params, seed=int(seed))
            for x in scores:
                run.add(x if math.isfinite(x) else None, math.nan, None if math.isfinite(x) else "a part failed")
            runs.append(run)
    return runs, skipped
