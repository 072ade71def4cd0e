#!/usr/bin/env bash
# Sweetimator scoring speed on NB-201, in process, one torch thread: seeded-random cells (random search,
# seed 0), batch 64, interval [1e-4, 5e-4). Prints cells per second from the run's own record.
# Regenerate: CELLS=60 benchmarks/sweet_speed.sh      smoke: CELLS=4 DATASET=synthetic DATA= benchmarks/sweet_speed.sh
set -euo pipefail
CELLS=${CELLS:-60} OUT=${OUT:-runs/sweet_speed} DATASET=${DATASET:-cifar10} DATA=${DATA-../shared/data}
export OMP_NUM_THREADS=1
rm -rf "$OUT"
nice -n 10 .venv/bin/evonas search --space nb201 --algorithm random --estimator sweet --interval 1e-4 5e-4 \
    --budget "$CELLS" --seed 0 --batch-size 64 --dataset "$DATASET" ${DATA:+--data-dir "$DATA"} --run-dir "$OUT" >/dev/null
.venv/bin/evonas show "$OUT" --json | .venv/bin/python -c 'import json, sys; s = json.load(sys.stdin)
print("%d cells, %.1f s: %.3f cells/s (wall), cache hits %.0f%%" % (s["evaluations"], s["elapsed"], s["rate"], 100 * s["cache_hit_rate"]))'
