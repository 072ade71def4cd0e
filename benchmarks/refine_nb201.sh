#!/usr/bin/env bash
# Training-refined head on NB-201 (benchmarks/refine_nb201.md): zero-cost search, then refine its top 4.
set -euo pipefail
cd "$(dirname "$0")/.."
for seed in ${SEEDS:-0}; do
  OMP_NUM_THREADS=1 .venv/bin/evonas search --space nb201 --estimator sweet --budget 500 --seed "$seed" \
      --interval 1e-4 5e-4 --data-dir ../shared/data --run-dir "runs/refine_bench/seed$seed" \
      --refine-top 4 --refine-epochs 2 --refine-images 2000 --truth ../shared/benchmarks/nb201_accuracy.csv
done
