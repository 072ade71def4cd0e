#!/usr/bin/env bash
# NAS-Bench-101 rank consistency (benchmarks/consistency_nb101.md): the exact commands, from the repo root.
set -euo pipefail
export OMP_NUM_THREADS=1
nice -n 10 .venv/bin/evonas calibrate --space nb101 --dataset cifar10 --data-dir ../shared/data
nice -n 10 .venv/bin/evonas correlate --space nb101 --estimator sweet,sweet_snip,sweet_ntk,params,flops,synflow \
  --archs-file ../shared/benchmarks/nb101_cifar10_dev.csv --truth-column val_accuracy --data-dir ../shared/data \
  --interval 1e-4 5e-4 --out runs/nb101-consistency
