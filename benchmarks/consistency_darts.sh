#!/usr/bin/env bash
# DARTS: the 575 NAS-Bench-301 cells (consistency_darts.md), from the repo root; Suite-Zero's proxy columns beside
# evonas's scores. `score` re-scores (about an hour; resumable); without it: the table and a composite selection.
set -euo pipefail
E=sweet,sweet_snip,sweet_ntk,synflow,jacov,nwot,params,flops
C=epe_nas,fisher,flops,grad_norm,grasp,jacov,l2_norm,nwot,params,plain,snip,synflow
[ "${1:-}" = score ] && nice -n 10 .venv/bin/evonas correlate --space darts --estimator $E --table-columns $C \
  --archs-file ../shared/benchmarks/darts_nb301_cifar10_dev.csv --truth-column val_accuracy \
  --data-dir ../shared/data --out benchmarks/consistency_darts/store --resume
.venv/bin/evonas correlate --from benchmarks/consistency_darts/store --select --select-parts 4 \
  --markdown benchmarks/consistency_darts.md --title "DARTS-space consistency (NAS-Bench-301 cells, CIFAR-10)"
