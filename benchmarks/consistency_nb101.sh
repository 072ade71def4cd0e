#!/usr/bin/env bash
# NB-101 rank consistency on the shared 350-cell table (benchmarks/consistency_nb101.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
.venv/bin/evonas calibrate --space nb101 --dataset cifar10 --data-dir ../shared/data
.venv/bin/evonas correlate --space nb101 --estimator sweet,sweet_snip,sweet_ntk,params,flops,synflow \
    --archs-file ../shared/benchmarks/nb101_cifar10_dev.csv --truth-column val_accuracy \
    --data-dir ../shared/data --out runs/nb101-consistency
