#!/usr/bin/env bash
# NB-201 search quality (benchmarks/search_quality.md): aging evolution and random search, 500 evaluations,
# 5 seeds, with Sweetimator and with the head-selected composite (benchmarks/head_selection.md).
# Scores come from the all-cells correlate folder (every NB-201 cell scored once, seed 0): a search
# replays live scoring exactly, in seconds. Drop STORE= to score live (about 10-20 CPU-min per run).
set -euo pipefail
cd "$(dirname "$0")/.."
EVONAS=${EVONAS:-.venv/bin/evonas}
STORE=${STORE-benchmarks/consistency_all/store}
TRUTH=../shared/benchmarks/nb201_accuracy.csv
OUT=runs/search_quality
# FITNESSES: space-separated estimators; default Sweetimator, the head-selected composite and an ablation.
read -r -a fitnesses <<< "${FITNESSES:-sweet sweet+sweet_snip=2+synflow+jacov=2 sweet_snip sweet_ntk sweet_snip+sweet_ntk+jacov sweet_snip+sweet_ntk+synflow+jacov}"
for est in "${fitnesses[@]}"; do
  for algo in ${ALGOS:-aging random}; do
    for seed in ${SEEDS:-0 1 2 3 4}; do
      dir="$OUT/${est//[+=]/_}-$algo-$seed"
      [ -f "$dir/best.json" ] || OMP_NUM_THREADS=1 $EVONAS search --space nb201 --estimator "$est" --interval 1e-4 5e-4 \
          --budget 500 --seed "$seed" --scoring-seed 0 --algorithm "$algo" --data-dir ../shared/data \
          ${STORE:+--score-store "$STORE"} --run-dir "$dir" > /dev/null
    done
    $EVONAS compare "$OUT/${est//[+=]/_}-$algo-"* --truth "$TRUTH" --title "NB-201: $algo, \`$est\`" \
        --markdown "$OUT/${est//[+=]/_}-$algo.md" > /dev/null
  done
done
{ echo "# NB-201 search quality: 500 evaluations, 5 seeds"; echo
  echo "Regenerate with \`bash benchmarks/search_quality.sh\` (scores from \`$STORE\`, all 15,625 cells, scoring seed 0)."
  for f in "$OUT"/*.md; do echo; sed 's/^# /## /' "$f"; done; } > benchmarks/search_quality.md
echo "wrote benchmarks/search_quality.md"
