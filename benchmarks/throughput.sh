#!/usr/bin/env bash
# Executor throughput: the same seeded-random NB-201 cells (random search, seed 0: the cells do not
# depend on the executor) scored with Sweetimator [1e-4, 5e-4), batch 64, in process, on 1 and on
# 2 Ray workers; prints the table of benchmarks/throughput.md from the three run folders.
# Regenerate: N=80 benchmarks/throughput.sh      smoke: N=6 DATASET=synthetic DATA= benchmarks/throughput.sh
set -euo pipefail
N=${N:-80} OUT=${OUT:-runs/throughput} DATASET=${DATASET:-cifar10} DATA=${DATA-../shared/data}
export OMP_NUM_THREADS=1 RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=disabled
search() {
    nice -n 10 .venv/bin/evonas search --space nb201 --algorithm random --estimator sweet --interval 1e-4 5e-4 \
        --budget "$N" --seed 0 --dataset "$DATASET" ${DATA:+--data-dir "$DATA"} --run-dir "$OUT/$1" "${@:2}" >/dev/null
}
rm -rf "$OUT"
search local --executor local
search ray1 --executor ray --workers 1
search ray2 --executor ray --workers 2
# Steady state (from each worker's first result to the last, so start-up is left out), from history.jsonl.
.venv/bin/python - "$OUT" <<'EOF'
import statistics, sys
from pathlib import Path
from evonas.api import Run
rate, scores = {}, {}
print("| mode | evals/s | wall s/eval | scoring s/eval (in worker) | overhead |\n|---|---|---|---|---|")
for mode, workers in (("local", 1), ("ray1", 1), ("ray2", 2)):
    scored = sorted((r for r in Run.load(Path(sys.argv[1]) / mode).history if r["status"] == "ok" and not r["cache_hit"]),
                    key=lambda r: r["t"])  # each worker's first result (its warm-up) is left out
    wall = (scored[-1]["t"] - scored[workers - 1]["t"]) / (len(scored) - workers)
    inside = statistics.fmean(r["seconds"] for r in scored[workers:])
    rate[mode], scores[mode] = 1 / wall, {r["genotype"]: r["score"] for r in scored}
    print(f"| {mode} | {1 / wall:.3f} | {wall:.3f} | {inside:.3f} | {wall * workers / inside - 1:+.1%} |")
print(f"\n2 Ray workers vs 1: {rate['ray2'] / rate['ray1']:.2f}x (target >= 1.6x); "
      f"1 Ray worker vs in-process: {rate['ray1'] / rate['local']:.2f}x; "
      f"same score for every cell in every mode: {scores['local'] == scores['ray1'] == scores['ray2']}")
EOF
