"""DARTS-space consistency: the Sweet family, baselines and composites on 575 NAS-Bench-301 cells.

Every cell of ``../shared/benchmarks/darts_nb301_cifar10_dev.csv`` is scored through the normal
``Scorer`` path (DARTS proxy network: 16 channels, 8 cells; one fixed batch of 64 augmented
CIFAR-10 images; seeded init per cell; CPU) with every estimator of ``ESTIMATORS`` (the Sweet
variants share one backward pass). For the calibration check, the same network's gradients are
also counted in every bin of the Sweetimator grid, so the report gives Spearman per candidate
bin next to the bin DARTS calibration chose (the count in the chosen bin must equal the
``sweet`` score: checked for every cell).

Per-cell scores go to ``consistency_darts/scores_shard<K>.csv`` as they come (resumable; several
processes can split the cells with ``--shard K/N``); composites are computed from those columns
with the normalisation ``resolve_scoring`` fixes on the DARTS calibration sample, exactly as the
composite estimator scores a cell. Baselines are also ranked against NAS-Bench-Suite-Zero's own
scores of the same cells (the CSV's proxy columns).

    nice .venv/bin/python benchmarks/consistency_darts.py --shard 0/2 &   # score (two processes)
    nice .venv/bin/python benchmarks/consistency_darts.py --shard 1/2
    .venv/bin/python benchmarks/consistency_darts.py --report             # tables only

Data: NAS-Bench-301 (Siems et al.) validation accuracies and NAS-Bench-Suite-Zero (Krishnakumar
et al., 2022) proxy scores, as shipped in ../shared; CIFAR-10 (Krizhevsky, 2009).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from consistency_all import candidates, composite_column, metrics
from estimators.sweet import GRID, bin_counts, weight_gradients
from evonas.correlating.stats import spearman
from evonas.data import load_dataset
from evonas.scoring import Scorer, calibration_for, reference_scores, resolve_scoring
from evonas.scoring.composite import Normalisation, Part, composite_settings
from evonas.scoring.scorer import build_model, seeded_rng
from evonas.seeding import init_seed
from evonas.settings import ScoringSettings

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EVONAS_SHARED", ROOT.parent / "shared"))
HERE = Path(__file__).resolve().parent
ESTIMATORS = ("sweet", "sweet_snip", "sweet_ntk", "synflow", "jacov", "nwot", "params", "flops")
COMPOSITES = ("sweet_snip+sweet_ntk+jacov", "sweet_ntk+jacov", "sweet_ntk+synflow+jacov", "sweet+sweet_ntk+jacov",
              "sweet_ntk+synflow", "sweet_snip+synflow+nwot")
#: Our estimator -> NAS-Bench-Suite-Zero column of the same proxy.
SUITE_ZERO = {"synflow": "synflow", "jacov": "jacov", "nwot": "nwot", "params": "params", "flops": "flops"}
SEED = 0
PAPER_SWEET_NB301 = 0.59


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shard", default="0/1", metavar="K/N", help="score cells i with i %% N == K")
    p.add_argument("--cells", type=int, default=575, help="score the first C cells of the table")
    p.add_argument("--table", type=Path, default=SHARED / "benchmarks" / "darts_nb301_cifar10_dev.csv")
    p.add_argument("--data-dir", type=Path, default=SHARED / "data")
    p.add_argument("--work", type=Path, default=HERE / "consistency_darts")
    p.add_argument("--report", action="store_true", help="only write the tables from --work")
    return p.parse_args()


def table_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def part_settings(args: argparse.Namespace, data: Any) -> dict[str, dict]:
    return {n: resolve_scoring("darts", n, data_dir=str(args.data_dir), seed=SEED, data=data).estimator_settings
            for n in ESTIMATORS}


def write_normalisation(args: argparse.Namespace, settings: dict[str, dict], data: Any) -> None:
    """Each part's fixed normalisation on the DARTS calibration sample (cached by evonas), saved here."""
    scores = reference_scores("darts", settings, seed=SEED, data=data,
                              progress=lambda d, t: print(f"  calibration sample {d}/{t}", flush=True))
    norms = {n: Normalisation.from_scores(n, scores[n]).to_dict() for n in ESTIMATORS}
    calibration = calibration_for("darts", data_dir=str(args.data_dir), seed=SEED, data=data).result
    (args.work / "normalisation.json").write_text(json.dumps(
        {"seed": SEED, "settings": settings, "normalisation": norms, "calibration": calibration.to_dict(),
         "calibration_sample_scores": scores}, indent=1) + "\n")


def score(args: argparse.Namespace) -> None:
    shard, shards = (int(x) for x in args.shard.split("/"))
    args.work.mkdir(parents=True, exist_ok=True)
    data = load_dataset("cifar10", split="train", data_dir=str(args.data_dir))
    settings = part_settings(args, data)
    if shard == 0 and not (args.work / "normalisation.json").is_file():
        write_normalisation(args, settings, data)
    config = ScoringSettings("darts", "+".join(ESTIMATORS),
                             composite_settings([Part(n, 1.0, settings[n]) for n in ESTIMATORS], {}),
                             seed=SEED, data_dir=str(args.data_dir))
    scorer = Scorer(config, dataset=data)
    path = args.work / f"scores_shard{shard}.csv"
    done = {int(r["row"]) for k in range(16) for r in read_csv(args.work / f"scores_shard{k}.csv")}
    rows = table_rows(args.table)[: args.cells]
    todo = [i for i in range(len(rows)) if i % shards == shard and i not in done]
    print(f"shard {shard}/{shards}: {len(todo)} cells to score", flush=True)
    bins = [f"bin{i}" for i in range(len(GRID) - 1)]
    interval = tuple(settings["sweet"]["interval"])
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if not path.is_file() or not path.read_text().strip():
            writer.writerow(["row", "seconds", *ESTIMATORS, *bins, "errors"])
        for n, i in enumerate(todo, 1):
            start = time.perf_counter()
            genotype = rows[i]["genotype"]
            key, results = scorer.score_parts(genotype)
            counts = _bin_counts(scorer, genotype, key)
            sweet = results["sweet"]
            if sweet.ok and int(counts[list(zip(GRID[:-1], GRID[1:])).index(interval)]) != int(sweet.score):
                raise SystemExit(f"row {i}: bin count {counts} disagrees with sweet {sweet.score}")
            errors = "; ".join(f"{e}: {r.error}" for e, r in results.items() if not r.ok)
            writer.writerow([i, f"{time.perf_counter() - start:.3f}",
                             *(repr(results[e].score) if results[e].ok else "nan" for e in ESTIMATORS),
                             *(int(c) for c in counts), errors[:300]])
            fh.flush()
            if n % 10 == 0:
                print(f"shard {shard}: {n}/{len(todo)}", flush=True)


def _bin_counts(scorer: Scorer, genotype: str, key: str) -> torch.Tensor:
    """Gradient counts in every calibration bin, on the very network and batch ``sweet`` scored."""
    with seeded_rng(init_seed(SEED, key), scorer.device):
        model = build_model(scorer.space, scorer.space.from_str(genotype), scorer.dataset.num_classes,
                            scorer.build_options, scorer.device)
        model.train()
        _, grads = weight_gradients(model, scorer.batches(0)[0])
    return bin_counts(grads, GRID)


def fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def report(args: argparse.Namespace) -> None:
    table = table_rows(args.table)
    by_row = {}  # a cell scored twice (shards re-split mid-run) counts once; its scores are identical
    for k in range(16):
        for r in read_csv(args.work / f"scores_shard{k}.csv"):
            by_row.setdefault(int(r["row"]), r)
    scored = [by_row[i] for i in sorted(by_row)]
    meta = json.loads((args.work / "normalisation.json").read_text())
    truth = np.array([float(table[int(r["row"])]["val_accuracy"]) for r in scored])
    columns = {n: np.array([float(r[n]) for r in scored]) for n in ESTIMATORS}
    for spec in COMPOSITES:
        columns[spec] = composite_column(spec, columns, meta["normalisation"])
    seconds = np.array([float(r["seconds"]) for r in scored])
    lines = [
        "# DARTS-space consistency (NAS-Bench-301 cells, CIFAR-10)", "",
        f"Generated by `benchmarks/consistency_darts.py` ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC). "
        f"Cells: **{len(scored)} of the {len(table)}** in `darts_nb301_cifar10_dev.csv`; truth: their "
        "NAS-Bench-301 validation accuracy (trained with 32 channels, 8 cells, 100 epochs). Per-cell scores: "
        "`consistency_darts/scores_shard*.csv` (column `row` = the table's row).", "",
        "**Proxy network.** Cells are scored on evonas's DARTS proxy network, 16 channels and 8 cells "
        "(`DartsSpace.proxy_options`): the same depth as the network NAS-Bench-301 trained (8 cells), so the "
        "depth structure the Sweetimator measures is the same, at half its width to keep a CPU evaluation "
        f"near {np.median(seconds):.1f} s for all {len(ESTIMATORS)} estimators together (median, this 2-core "
        "machine, shared). One fixed batch of 64 augmented images, seed 0, CPU.", "",
        "## Against the truth", "",
        "| estimator | Spearman | Kendall | top-10% | nDCG@100 | failed |", "|---|--:|--:|--:|--:|--:|",
    ]
    results = {}
    for name, col in columns.items():
        m = metrics(col, truth, failed_last=False)
        results[name] = m
        lines.append(f"| {name} | **{fmt(m['rho'])}** | {fmt(m['tau'])} | {fmt(m['top10'])} | {fmt(m['ndcg'])} | "
                     f"{m['failed']} |")
    best_single = max(ESTIMATORS, key=lambda n: results[n]["rho"])
    best_comp = max(COMPOSITES, key=lambda n: results[n]["rho"])
    lines += ["", f"The paper reports {PAPER_SWEET_NB301} for the Sweetimator on NAS-Bench-301; the issue's target "
              f"is >= 0.70. Reached: sweet {fmt(results['sweet']['rho'])}, best single {best_single} "
              f"{fmt(results[best_single]['rho'])}, best composite {best_comp} {fmt(results[best_comp]['rho'])}. "
              "Composites are normalised on the DARTS calibration sample (100 cells, never the truth); they "
              "were chosen on NB-201, not on these cells.", ""]
    # A composite for DARTS, chosen on the even table rows and measured on the odd ones (disjoint cells).
    even = np.array([int(r["row"]) % 2 == 0 for r in scored])
    pool = [spec for spec in candidates(ESTIMATORS) if spec not in columns]
    for spec in pool:
        columns[spec] = composite_column(spec, columns, meta["normalisation"])
    ranked = sorted(list(ESTIMATORS) + list(COMPOSITES) + pool,
                    key=lambda n: -metrics(columns[n][even], truth[even], failed_last=False)["rho"])
    lines += [f"## A DARTS composite (selected on the {int(even.sum())} even rows, measured on the "
              f"{int((~even).sum())} odd rows)", "",
              f"Every unit-weight composite of 2 to 4 of the estimators above ({len(pool) + len(COMPOSITES)} in all), "
              "ranked by Spearman on the even rows; the 6 best and the best single estimator:", "",
              "| estimator | Spearman select | Spearman test | Kendall test |", "|---|--:|--:|--:|"]
    shown = ranked[:6] + [n for n in ranked if n in ESTIMATORS][:1]
    for name in dict.fromkeys(shown):
        sel, test = (metrics(columns[name][m], truth[m], failed_last=False) for m in (even, ~even))
        lines.append(f"| {name} | {fmt(sel['rho'])} | **{fmt(test['rho'])}** | {fmt(test['tau'])} |")
    results["darts_choice"] = {"name": ranked[0], "test": metrics(columns[ranked[0]][~even], truth[~even], False)}
    lines.append("")
    cal = meta["calibration"]
    grid = cal["grid"]
    lines += ["## Calibration on DARTS: Spearman per candidate bin", "",
              f"DARTS calibration ({cal['num_networks']} networks) chose [{cal['interval'][0]:g}, "
              f"{cal['interval'][1]:g}). The Sweetimator score with each bin as its interval (gradient counts "
              "on the same networks and batch):", "",
              "| bin | mean depth trend (calibration) | Spearman vs truth | chosen |", "|---|--:|--:|:-:|"]
    for i, (lo, hi) in enumerate(zip(grid[:-1], grid[1:])):
        col = np.array([float(r[f"bin{i}"]) for r in scored])
        rho = spearman(col, truth) if np.ptp(col) > 0 else math.nan
        mark = "yes" if [lo, hi] == list(cal["interval"]) else ""
        lines.append(f"| [{lo:g}, {hi:g}) | {cal['means'][i]:+.3f} | {fmt(rho)} | {mark} |")
    lines += ["", "## Our baselines against NAS-Bench-Suite-Zero's scores of the same cells", "",
              "| estimator | Spearman with Suite-Zero's column | Suite-Zero's own Spearman vs truth | ours |",
              "|---|--:|--:|--:|"]
    for ours, theirs in SUITE_ZERO.items():
        ref = np.array([float(table[int(r["row"])][theirs]) for r in scored])
        keep = np.isfinite(columns[ours]) & np.isfinite(ref)
        lines.append(f"| {ours} | {fmt(spearman(columns[ours][keep], ref[keep]))} | {fmt(spearman(ref, truth))} | "
                     f"{fmt(results[ours]['rho'])} |")
    lines += ["", "Our synflow, nwot, params and flops rank these cells as Suite-Zero's do (Spearman 0.97 to 1.00 "
              "with their columns). jacov does not agree with Suite-Zero's, but neither ranks DARTS cells at all "
              "(both near 0 against the truth): jacov depends on the very images of its batch (ours: 64 augmented "
              "images of the shared subset, seed 0; Suite-Zero's: its own batch), and two near-random rankings "
              "agree little. On NB-201, where jacov carries signal, evonas's jacov matches the Suite-Zero column "
              "(`tests/test_reference_proxies.py`).", ""]
    own = {c: spearman(np.array([float(table[int(r["row"])][c]) for r in scored]), truth)
           for c in table[0] if c not in ("genotype", "val_accuracy")}  # every other column is a proxy
    best = max(own, key=lambda c: own[c])
    top_sweet = max((n for n in ESTIMATORS if n.startswith("sweet")), key=lambda n: results[n]["rho"])
    lines += [f"Every proxy column of Suite-Zero against the truth on these {len(scored)} cells: "
              + ", ".join(f"{c} {fmt(own[c])}" for c in sorted(own, key=lambda c: -own[c]))
              + f". The best, {best} {fmt(own[best])}, is {results[top_sweet]['rho'] - own[best]:.2f} below "
              f"`{top_sweet}` ({fmt(results[top_sweet]['rho'])}).", "",
              "Consequence for composites: the NB-201 choice `sweet_snip+sweet_ntk+jacov` does not transfer to "
              "DARTS (jacov adds noise there); on DARTS no composite of these estimators beats the Sweet family "
              "on held-out cells, so `sweet_snip` (or `sweet`) is the DARTS recommendation."]
    (HERE / "consistency_darts.md").write_text("\n".join(lines) + "\n")
    (HERE / "consistency_darts.json").write_text(json.dumps(
        {"cells": len(scored), "results": results, "median_seconds": float(np.median(seconds))}, indent=1) + "\n")
    print("\n".join(lines))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    if args.report:
        report(args)
    else:
        score(args)


if __name__ == "__main__":
    main()
