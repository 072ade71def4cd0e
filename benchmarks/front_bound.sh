#!/usr/bin/env bash
# What each fitness's own exact front can reach on NB-201 (benchmarks/front_bound_nb201.md): the bound on
# any search with it, under params and under measured Pixel 3 / edge-GPU latency (HW-NAS-Bench), from the
# all-cells store; nothing is scored (about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
EVONAS=${EVONAS:-.venv/bin/evonas}
OMP_NUM_THREADS=1 $EVONAS correlate --from benchmarks/consistency_all/store \
    --cost-table ../shared/benchmarks/nb201_hw_cifar10.csv \
    --front-cost params,pixel3_latency,edgegpu_latency --budgets params=0.2M,0.4M,0.6M,0.8M,1.0M,1.6M \
    --composites sweet+sweet_snip=2+synflow+jacov=2 \
    --markdown benchmarks/front_bound_nb201.md --title "Each fitness's exact front on NB-201: the bound on any search" > /dev/null
echo "wrote benchmarks/front_bound_nb201.md"
