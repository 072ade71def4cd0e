#!/usr/bin/env bash
# Every registered estimator on 1,000 seeded-random NB-201 cells (consistency.md), from the repo root. Many hours
# on a CPU (add --resume to continue; split with --shard I/N + --merge); no per-cell scores are stored in the repo for this one.
set -euo pipefail
E=sweet,sweet_snip,sweet_ntk,epe_nas,fisher,flops,grad_norm,gradsign,grasp,jacov,l2_norm,ntk,nwot,params,plain,snip,synflow,zen,zico
nice -n 10 .venv/bin/evonas correlate --space nb201 --estimator "$E" --truth ../shared/benchmarks/nb201_accuracy.csv \
  --sample 1000 --seed 0 --data-dir ../shared/data --out runs/consistency  # --resume continues it
.venv/bin/evonas correlate --from runs/consistency --markdown benchmarks/consistency.md --title "Estimator consistency on NAS-Bench-201 / CIFAR-10"
