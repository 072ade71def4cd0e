#!/usr/bin/env bash
# The published NB-201/CIFAR-10 interval from the default calibration (first 100 cells of the benchmark
# order, batch 64): expect "interval: [0.0001, 0.0005)". The test suite pins the 20-cell prefix
# (tests/test_calibration.py); this is the full check (~80 CPU-s). Writes benchmarks/calibration_nb201.md's table.
set -euo pipefail
DATA=${DATA:-../shared/data}
EVONAS_CACHE=$(mktemp -d) nice -n 10 .venv/bin/evonas calibrate --space nb201 --dataset cifar10 --data-dir "$DATA" \
    --archs "${ARCHS:-100}" --batch-size 64 --seed 0 --no-cache
