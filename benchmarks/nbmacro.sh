#!/usr/bin/env bash
# NAS-Bench-Macro (Su et al., CVPR 2021) through the examples/nbmacro plug-in: the exact commands
# behind benchmarks/nbmacro.md and benchmarks/nbmacro.json. Run from the repository root with
# ../shared present; about 45 CPU-minutes on one thread (2 Ray workers where there are 2 cores).
set -euo pipefail
export OMP_NUM_THREADS=1 RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=disabled
export EVONAS_CACHE=${EVONAS_CACHE:-runs/nbmacro-bench/cache}   # calibration of this benchmark only
SHARED=${EVONAS_SHARED:-../shared}
TABLE=$SHARED/benchmarks/nbmacro_cifar10.csv
DATA=$SHARED/data
OUT=${OUT:-runs/nbmacro-bench}
EVONAS=".venv/bin/evonas"
mkdir -p "$OUT"

# The plug-in, as a user installs it (editable, into the project's venv).
.venv/bin/python -m pip install -q --no-deps -e examples/nbmacro
$EVONAS spaces | grep nbmacro

# 1. CPU seconds of one score of one network (batch 64, CIFAR-10), for three networks.
nice -n 10 .venv/bin/python - 22222222,11111111,12012012 sweet,sweet_ntk,synflow,nwot,flops "$DATA" <<'EOF' | tee "$OUT/time_one.txt"
import sys, time, warnings
import torch
from evonas.scoring.scorer import Scorer
from evonas.settings import ScoringSettings
warnings.simplefilter("ignore")
torch.set_num_threads(1)
genotypes = sys.argv[1].split(",")
for est in sys.argv[2].split(","):
    settings = {"interval": [1e-4, 5e-4]} if est.startswith("sweet") else {}
    scorer = Scorer(ScoringSettings(space="nbmacro", estimator=est, estimator_settings=settings, data_dir=sys.argv[3]))
    scorer.score(genotypes[0])  # warm-up
    for g in genotypes:
        start = time.process_time()
        scorer.score(g)
        print(f"{est} {g} {time.process_time() - start:.3f} cpu-s", flush=True)
EOF

# 2. The space's own Sweetimator calibration (100 seeded-random networks, one fixed batch).
nice -n 10 $EVONAS calibrate --space nbmacro --dataset cifar10 --data-dir "$DATA" --archs 100 --seed 0 \
    | tee "$OUT/calibrate.txt"

# 3. Consistency on 200 seeded-random networks of the table: NB-201's interval ...
nice -n 10 $EVONAS correlate --space nbmacro --truth "$TABLE" --truth-column test_accuracy --sample 200 --seed 0 \
    --estimator sweet,sweet_snip,sweet_ntk,params,flops,synflow,nwot,sweet_ntk+flops --interval 1e-4 5e-4 \
    --data-dir "$DATA" --executor ray --workers 2 --out "$OUT/c200_nb201"
# ... and the space's calibrated interval (no --interval: the cache from step 2), same networks.
nice -n 10 $EVONAS correlate --space nbmacro --truth "$TABLE" --truth-column test_accuracy --sample 200 --seed 0 \
    --estimator sweet,sweet_ntk+flops \
    --data-dir "$DATA" --executor ray --workers 2 --out "$OUT/c200_calibrated"
# params and FLOPs of every network, straight from the table's own columns.
.venv/bin/python - "$TABLE" <<'EOF' | tee "$OUT/table_costs.txt"
import csv, sys
from scipy.stats import kendalltau, spearmanr
rows = list(csv.DictReader(open(sys.argv[1])))
acc = [float(r["test_accuracy"]) for r in rows]
for col in ("params", "flops"):
    x = [float(r[col]) for r in rows]
    print(f"{col} all {len(rows)}: spearman {spearmanr(x, acc)[0]:.3f} kendall {kendalltau(x, acc)[0]:.3f}")
EOF

# 4. 300-evaluation searches, 5 seeds each, with the truth table for the found network's accuracy:
#    nwot (the best ranker of step 3) and flops (the cheapest strong one).
for estimator in nwot flops; do
    for seed in 0 1 2 3 4; do
        nice -n 10 $EVONAS search --space nbmacro --estimator "$estimator" --budget 300 --seed "$seed" \
            --data-dir "$DATA" --truth "$TABLE" --run-dir "$OUT/search-$estimator-$seed"
    done
done

# 5. Collect the numbers into benchmarks/nbmacro.json.
.venv/bin/python - "$OUT" "$TABLE" <<'EOF2'
import csv, json, sys
from pathlib import Path
from scipy.stats import kendalltau, spearmanr
out, table = Path(sys.argv[1]), sys.argv[2]
acc = {r["arch"]: float(r["test_accuracy"]) for r in csv.DictReader(open(table))}
ranked = sorted(acc.values(), reverse=True)
rows = list(csv.DictReader(open(table)))
truth = [float(r["test_accuracy"]) for r in rows]
all_rows = {c: {"spearman": spearmanr([float(r[c]) for r in rows], truth)[0],
                "kendall": kendalltau([float(r[c]) for r in rows], truth)[0]} for c in ("params", "flops")}
keep = ("scored", "spearman", "kendall", "top10_precision", "top_ranked_truth", "size_bucket_spearman", "seconds_per_cell")
result = {"source": "NAS-Bench-Macro (Su et al., CVPR 2021), ../shared/benchmarks/nbmacro_cifar10.csv; CIFAR-10 "
                    "batch 64 from ../shared/data; OMP_NUM_THREADS=1; seconds are wall on a shared 2-core machine",
          "space_best": {"accuracy": ranked[0], "genotypes": [a for a, v in acc.items() if v == ranked[0]]},
          "table_columns_all_6561": all_rows, "correlate": {}, "search": {}}
result["calibrated_interval"] = next(line for line in (out / "calibrate.txt").read_text().splitlines()
                                     if line.startswith("interval:")).split(";")[0]
result["cpu_seconds_per_score"] = [dict(zip(("estimator", "genotype", "cpu_s"), line.split()[:3]))
                                   for line in (out / "time_one.txt").read_text().splitlines()]
for run in ("c200_nb201", "c200_calibrated"):
    summary = json.loads((out / run / "summary.json").read_text())
    result["correlate"][run] = {name: {k: r[k] for k in keep} | {"settings": r.get("settings", {})}
                                for name, r in summary["results"].items()}
for run in sorted(p for p in out.glob("search-*") if p.is_dir()):
    best = json.loads((run / "best.json").read_text())["best"]["genotype"]
    result["search"][run.name] = {"genotype": best, "accuracy": acc[best],
                                  "rank": 1 + sum(v > acc[best] for v in ranked)}
Path("benchmarks/nbmacro.json").write_text(json.dumps(result, indent=1) + "\n")
EOF2
