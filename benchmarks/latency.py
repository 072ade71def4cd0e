"""How well the per-op latency table predicts whole-network latency (``benchmarks/latency.md``).

For each space: build the lookup table for CPU, batch 1, one thread, then time the deployed
network of seeded-random cells directly (same backend, warm-up and statistic of repeats) and
compare with the table's prediction: Spearman, median and 90th-percentile relative error. The
table is rebuilt every ``--rebuild-every`` cells (see ``run_space``).

    nice .venv/bin/python benchmarks/latency.py --cells 30        # both spaces, 30 cells each
    nice .venv/bin/python benchmarks/latency.py --spaces nb201 --cells 100
    nice .venv/bin/python benchmarks/latency.py --spaces nb201 --cells 100 --backend onnxruntime --statistic min

Results go to ``latency-<statistic>.json`` (torch) or ``latency-<backend>-<statistic>.json``.

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
from evonas.costs.latency import BACKENDS, WHOLE_GRAPH, make_timer
from evonas.costs.network import image_spec, meta_network, traced_ops
from evonas.seeding import stable_seed

HERE = Path(__file__).resolve().parent


def run_space(space_name: str, cells: int, repeats: int, rebuild_every: int, statistic: str, out: dict,
              backend: str = "torch") -> dict:
    """Validate in rounds: a freshly built table, then ``rebuild_every`` cells timed right after it.

    On a shared machine the load drifts over minutes; rebuilding per round keeps each prediction
    and its direct measurement under the same load, which is what a user building a table and
    searching with it on a quiet machine gets.
    """
    settings = LatencySettings(space_name, statistic=statistic, backend=backend)
    space = search_spaces.get(space_name)
    rng = random.Random(stable_seed("latency-benchmark", space_name))
    rows, builds = [], []
    for i in range(cells):
        if i % rebuild_every == 0:
            start = time.perf_counter()
            table = latency_table(settings, rebuild=True, timer=make_timer(settings, repeats=repeats))[0]
            builds.append({"seconds": round(time.perf_counter() - start, 1), "ops": len(table.ops),
                           "fixed_ms": table.fixed_ms})
        genotype = space.to_str(space.sample(rng))
        measured = measure_network(settings, genotype, make_timer(settings, repeats=repeats))
        predicted = table.predict(genotype)
        rows.append({"genotype": genotype, "measured_ms": measured, "predicted_ms": predicted, "round": len(builds),
                     "constant_output": _constant_output(settings, genotype)})
        print(f"{space_name} {i + 1}/{cells}: measured {measured:.3f} ms, predicted {predicted:.3f} ms", flush=True)
    measured = np.array([r["measured_ms"] for r in rows])
    predicted = np.array([r["predicted_ms"] for r in rows])
    rel = np.abs(predicted - measured) / measured
    result = {
        "space": space_name, "backend": backend, "statistic": statistic, "cells": cells, "repeats": repeats,
        "rebuild_every": rebuild_every, "builds": builds,
        "spearman": float(spearmanr(measured, predicted)[0]), "median_rel_error": float(np.median(rel)),
        "p90_rel_error": float(np.quantile(rel, 0.9)), "mean_signed_rel_error": float(np.mean((predicted - measured) / measured)),
        "measured_ms_range": [float(measured.min()), float(measured.max())], "rows": rows,
    }
    varying = np.array([not r["constant_output"] for r in rows])
    if backend in WHOLE_GRAPH and 2 < varying.sum() < len(rows):  # the same metrics without the folded networks
        result["without_constant_output"] = {
            "cells": int(varying.sum()), "spearman": float(spearmanr(measured[varying], predicted[varying])[0]),
            "median_rel_error": float(np.median(rel[varying])), "p90_rel_error": float(np.quantile(rel[varying], 0.9))}
    out[space_name] = result
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", default="nb201,darts")
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--rebuild-every", type=int, default=10, help="cells validated per freshly built table")
    parser.add_argument("--statistic", default="median", choices=("median", "min"))
    parser.add_argument("--backend", default="torch", choices=BACKENDS, help="what runs the timed networks")
    parser.add_argument("--work", type=Path, default=HERE.parent / "runs" / "latency-benchmark-cache")
    args = parser.parse_args()
    os.environ["EVONAS_CACHE"] = str(args.work)
    torch.set_num_threads(1)
    results: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "torch": torch.__version__, "python": platform.python_version(),
                                 **({"onnxruntime": _onnxruntime_version()} if args.backend == "onnxruntime" else {})},
                     "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for name in args.spaces.split(","):
        r = run_space(name, args.cells, args.repeats, args.rebuild_every, args.statistic, results, args.backend)
        print(f"{name}: N={r['cells']} Spearman {r['spearman']:.3f}, median rel. error {r['median_rel_error']:.1%}, "
              f"p90 {r['p90_rel_error']:.1%}")
    stem = "latency" if args.backend == "torch" else f"latency-{args.backend}"
    (HERE / f"{stem}-{args.statistic}.json").write_text(json.dumps(results, indent=1) + "\n")


def _constant_output(settings: LatencySettings, genotype: str) -> bool:
    """Whether no op of the cell's network sees the image (its output is a constant, which ONNX Runtime folds)."""
    space = search_spaces.get(settings.space)
    classes, side = image_spec(settings.dataset)
    model = meta_network(space, space.from_str(genotype), classes, settings.full()["build_options"])
    images = torch.zeros(settings.batch_size, 3, side, side, device="meta")
    return not traced_ops(space, model, images, constants=False)


def _onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    main()
