#!/usr/bin/env bash
# NAS-Bench-101, 350 cells (consistency_nb101.md), from the repo root, at the interval calibration picks with the
# final code, [1e-3, 5e-3) (`evonas calibrate --space nb101`), Suite-Zero's columns beside; composites from the
# stored parts. `score`: about an hour on a shared CPU.
set -euo pipefail
E=sweet,sweet_ntk,synflow,params,flops
[ "${1:-}" = score ] && nice -n 10 .venv/bin/evonas correlate --space nb101 --estimator $E --interval 1e-3 5e-3 \
  --archs-file ../shared/benchmarks/nb101_cifar10_dev.csv --truth-column val_accuracy --data-dir ../shared/data \
  --table-columns synflow,params,flops,snip,grasp,jacov --out benchmarks/consistency_nb101/store --resume
.venv/bin/evonas correlate --from benchmarks/consistency_nb101/store --composites sweet_ntk+synflow,sweet_ntk+params \
  --markdown benchmarks/consistency_nb101.md \
  --title "NAS-Bench-101 consistency (350 cells of nb101_cifar10_dev.csv, CIFAR-10)"
