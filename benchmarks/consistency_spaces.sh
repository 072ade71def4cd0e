#!/usr/bin/env bash
# One table across spaces (consistency_spaces.md), from the repo root, from the stored scores of consistency_all.sh
# (NB-201, all cells), consistency_darts.sh (575 NB-301 cells) and consistency_nb101.sh (350 cells); seconds.
set -euo pipefail
.venv/bin/evonas correlate --from benchmarks/consistency_all/store --from benchmarks/consistency_darts/store \
  --from benchmarks/consistency_nb101/store --composites sweet_ntk+synflow,sweet_ntk+params,sweet_snip+sweet_ntk+jacov \
  --markdown benchmarks/consistency_spaces.md \
  --title "Rank consistency across search spaces"
