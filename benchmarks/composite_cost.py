"""Scoring time per evaluation of composites against Sweetimator alone (NB-201, in-process).

Every estimator spec gets its own ``Scorer`` (resolved as ``evonas search`` resolves it: the
calibrated Sweet interval, the composite's fixed normalisation). The specs score the same
seeded-random cells one cell at a time, the order of the specs rotating per cell so machine
load hits them alike; the first cell is a warm-up and not timed. The issue's budget for a
composite is 1.5x Sweetimator's time per evaluation.

    python benchmarks/composite_cost.py --cells 40 sweet sweet_snip+sweet_ntk+jacov

Writes ``benchmarks/composite_cost.json`` and ``benchmarks/composite_cost.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

import torch

import search_spaces
from evonas.data import load_dataset
from evonas.scoring import Scorer, resolve_scoring

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DEFAULT_SPECS = ("sweet", "sweet_snip+sweet_ntk", "sweet_snip+sweet_ntk+jacov", "jacov", "sweet_ntk+synflow+jacov")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=list(DEFAULT_SPECS),
                        help="estimators or composites; the first is the baseline of the ratio")
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("cifar10", split="train", data_dir=args.data_dir)
    scorers = {s: Scorer(resolve_scoring("nb201", s, data_dir=args.data_dir, batch_size=args.batch_size,
                                         seed=args.seed, data=data), dataset=data) for s in args.specs}
    space, rng = search_spaces.get("nb201"), random.Random(args.seed)
    cells = [space.to_str(space.sample(rng)) for _ in range(args.cells + 1)]
    load_before = os.getloadavg()[0]
    seconds: dict[str, list[float]] = {s: [] for s in args.specs}
    for i, cell in enumerate(cells):
        order = args.specs[i % len(args.specs):] + args.specs[:i % len(args.specs)]
        for spec in order:
            start = time.perf_counter()
            scorers[spec].score(cell)
            if i:  # cell 0 warms up every scorer
                seconds[spec].append(time.perf_counter() - start)
        print(f"cell {i}/{args.cells}", flush=True)
    base = statistics.mean(seconds[args.specs[0]])
    rows = [{"spec": s, "mean_s": statistics.mean(v), "median_s": statistics.median(v),
             "ratio": statistics.mean(v) / base} for s, v in seconds.items()]
    record = {"command": "python benchmarks/composite_cost.py --cells {} {}".format(args.cells, " ".join(args.specs)),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__,
              "threads": args.threads, "batch_size": args.batch_size, "cells": args.cells,
              "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
              "machine": platform.processor() or platform.machine(), "rows": rows}
    (HERE / "composite_cost.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = ["# Composite scoring cost (NB-201, in-process)", "",
             f"`{record['command']}` ({record['date']}, CPU, {args.threads} torch thread, torch {torch.__version__}, "
             f"batch {args.batch_size}; load average {load_before:.1f} before, {record['load_average_after']:.1f} "
             "after). Seconds per evaluation (parse, seeded build, every part), the specs interleaved cell by cell.",
             "", f"| estimator | mean s | median s | x `{args.specs[0]}` |", "|---|--:|--:|--:|"]
    lines += [f"| `{r['spec']}` | {r['mean_s']:.3f} | {r['median_s']:.3f} | {r['ratio']:.2f}x |" for r in rows]
    lines += ["", "Parts that read the shared pass (the Sweetimator variants' weight gradients, jacov's and "
              "epe_nas's input Jacobian) share one network and one forward pass; every other part builds "
              "its own network (`evonas/scoring/scorer.py`).", ""]
    (HERE / "composite_cost.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
