"""How well the per-op latency table predicts whole-network latency (``benchmarks/latency.md``).

Per space: build the table (``evonas latency build``'s code), time seeded-random cells' whole
deployed networks the same way (``evonas.costs.measure_network``), compare with the table's
prediction. The table is rebuilt every ``--rebuild-every`` cells, so each prediction and its
measurement see the same machine load. Tables go to a private cache (``runs/latency-benchmark-cache``).

    nice .venv/bin/python benchmarks/latency.py --spaces nb201,darts --cells 30 [--statistic min] [--backend onnxruntime]
"""
import argparse, json, os, random, time
from statistics import median, quantiles

import torch

import search_spaces
from evonas.correlating.stats import spearman
from evonas.costs import LatencySettings, latency_table, measure_network
from evonas.costs.latency import make_timer
from evonas.seeding import stable_seed

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
for flag, default in (("--spaces", "nb201,darts"), ("--cells", 30), ("--repeats", 25), ("--rebuild-every", 10),
                      ("--statistic", "median"), ("--backend", "torch"), ("--out", "runs/latency.json")):
    p.add_argument(flag, type=type(default), default=default)
args = p.parse_args()
os.environ["EVONAS_CACHE"] = "runs/latency-benchmark-cache"
torch.set_num_threads(1)
results = {"command": "python benchmarks/latency.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__}
for name in args.spaces.split(","):
    settings = LatencySettings(name, statistic=args.statistic, backend=args.backend)
    space, rng, rows = search_spaces.get(name), random.Random(stable_seed("latency-benchmark", name)), []
    for i in range(args.cells):
        if i % args.rebuild_every == 0:
            table = latency_table(settings, rebuild=True, timer=make_timer(settings, repeats=args.repeats))[0]
        genotype = space.to_str(space.sample(rng))
        rows.append({"genotype": genotype, "predicted_ms": table.predict(genotype),
                     "measured_ms": measure_network(settings, genotype, make_timer(settings, repeats=args.repeats))})
    measured, predicted = [r["measured_ms"] for r in rows], [r["predicted_ms"] for r in rows]
    errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
    results[name] = {"spearman": spearman(predicted, measured), "median_rel_error": median(errors),
                     "p90_rel_error": quantiles(errors, n=10, method="inclusive")[-1], "rows": rows}
    print(f"{name}: N={args.cells} Spearman {results[name]['spearman']:.3f}, median rel. error "
          f"{results[name]['median_rel_error']:.1%}, p90 {results[name]['p90_rel_error']:.1%}")
open(args.out, "w").write(json.dumps(results, indent=1) + "\n")
