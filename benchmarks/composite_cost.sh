#!/usr/bin/env bash
# Seconds per evaluation of composites against `sweet` (composite_cost.md), from the repo root: the s/cell column
# of `evonas correlate` (worker wall time for build + every part) on 30 seeded-random NB-201 cells.
set -euo pipefail
OMP_NUM_THREADS=1 nice -n 10 .venv/bin/evonas correlate --space nb201 --truth ../shared/benchmarks/nb201_accuracy.csv \
  --sample 30 --data-dir ../shared/data --out runs/composite-cost \
  --estimator sweet,sweet_snip+sweet_ntk,sweet_snip+sweet_ntk+jacov,jacov,sweet_ntk+synflow+jacov
.venv/bin/evonas correlate --from runs/composite-cost
