"""How well the per-op latency table predicts whole-network latency (``benchmarks/latency.md``).

For each space: build the lookup table for CPU, batch 1, one thread, then time the deployed
network of seeded-random cells directly (same warm-up and median of repeats) and compare with the
table's prediction: Spearman, median and 90th-percentile relative error. The table is rebuilt
every ``--rebuild-every`` cells (see ``run_space``).

    nice .venv/bin/python benchmarks/latency.py --cells 30        # both spaces, 30 cells each
    nice .venv/bin/python benchmarks/latency.py --spaces nb201 --cells 100

The tables go to a private cache (``runs/latency-benchmark-cache``), so a user's cache is not touched.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

import search_spaces
from evonas.costs import LatencySettings, latency_table, measure_network
from evonas.costs.latency import wall_timer
from evonas.seeding import stable_seed

HERE = Path(__file__).resolve().parent


def run_space(space_name: str, cells: int, repeats: int, rebuild_every: int, statistic: str, out: dict) -> dict:
    """Validate in rounds: a freshly built table, then ``rebuild_every`` cells timed right after it.

    On a shared machine the load drifts over minutes; rebuilding per round keeps each prediction
    and its direct measurement under the same load, which is what a user building a table and
    searching with it on a quiet machine gets.
    """
    settings = LatencySettings(space_name, statistic=statistic)
    space = search_spaces.get(space_name)
    rng = random.Random(stable_seed("latency-benchmark", space_name))
    rows, builds = [], []
    for i in range(cells):
        if i % rebuild_every == 0:
            start = time.perf_counter()
            table = latency_table(settings, rebuild=True, timer=wall_timer(repeats=repeats, statistic=statistic))[0]
            builds.append({"seconds": round(time.perf_counter() - start, 1), "ops": len(table.ops),
                           "fixed_ms": table.fixed_ms})
        genotype = space.to_str(space.sample(rng))
        measured = measure_network(settings, genotype, wall_timer(repeats=repeats, statistic=statistic))
        predicted = table.predict(genotype)
        rows.append({"genotype": genotype, "measured_ms": measured, "predicted_ms": predicted, "round": len(builds)})
        print(f"{space_name} {i + 1}/{cells}: measured {measured:.3f} ms, predicted {predicted:.3f} ms", flush=True)
    measured = np.array([r["measured_ms"] for r in rows])
    predicted = np.array([r["predicted_ms"] for r in rows])
    rel = np.abs(predicted - measured) / measured
    result = {
        "space": space_name, "statistic": statistic, "cells": cells, "repeats": repeats,
        "rebuild_every": rebuild_every, "builds": builds,
        "spearman": float(spearmanr(measured, predicted)[0]), "median_rel_error": float(np.median(rel)),
        "p90_rel_error": float(np.quantile(rel, 0.9)), "mean_signed_rel_error": float(np.mean((predicted - measured) / measured)),
        "measured_ms_range": [float(measured.min()), float(measured.max())], "rows": rows,
    }
    out[space_name] = result
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", default="nb201,darts")
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--rebuild-every", type=int, default=10, help="cells validated per freshly built table")
    parser.add_argument("--statistic", default="median", choices=("median", "min"))
    parser.add_argument("--work", type=Path, default=HERE.parent / "runs" / "latency-benchmark-cache")
    args = parser.parse_args()
    os.environ["EVONAS_CACHE"] = str(args.work)
    torch.set_num_threads(1)
    results: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "torch": torch.__version__, "python": platform.python_version()},
                     "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for name in args.spaces.split(","):
        r = run_space(name, args.cells, args.repeats, args.rebuild_every, args.statistic, results)
        print(f"{name}: N={r['cells']} Spearman {r['spearman']:.3f}, median rel. error {r['median_rel_error']:.1%}, "
              f"p90 {r['p90_rel_error']:.1%}")
    (HERE / f"latency-{args.statistic}.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
