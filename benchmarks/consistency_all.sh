#!/usr/bin/env bash
# NAS-Bench-201, all 15,625 cells (consistency_all.md), from the repo root. `score` re-scores (hours on a CPU;
# resumable, split with --shard I/N + --merge); without it the table is rebuilt from the stored scores in seconds.
set -euo pipefail
E=sweet,sweet_snip,sweet_ntk,synflow,jacov,nwot,params,flops; T=../shared/benchmarks/nb201_accuracy.csv
[ "${1:-}" = score ] && nice -n 10 .venv/bin/evonas correlate --space nb201 --estimator $E --archs-file $T \
  --data-dir ../shared/data --out benchmarks/consistency_all/store --resume
.venv/bin/evonas correlate --from benchmarks/consistency_all/store --from benchmarks/consistency_all/seeds \
  --composites sweet_snip+sweet_ntk+jacov,sweet_snip+sweet_ntk+synflow+jacov,sweet_ntk+jacov,sweet_ntk+synflow+jacov \
  --markdown benchmarks/consistency_all.md --title "All-cells consistency on NAS-Bench-201 / CIFAR-10"
