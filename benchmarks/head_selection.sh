#!/usr/bin/env bash
# A fitness chosen by the head of the ranking (head_selection.md), from the repo root: singles, size-aware residuals
# and composites of up to 4 parts (weights 1, 2) chosen on half the cells, measured on the other half, 10 splits.
# Nothing is scored: the stores come from consistency_all.sh and consistency_darts.sh. A few minutes.
set -euo pipefail
.venv/bin/evonas correlate --from benchmarks/consistency_all/store --from benchmarks/consistency_darts/store \
  --select --select-parts 4 --select-splits 10 --markdown benchmarks/head_selection.md \
  --title "A fitness chosen by the head of the ranking"
