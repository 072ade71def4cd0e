#!/usr/bin/env bash
# Training-refined head on NB-201 (benchmarks/refine_nb201.md): zero-cost search (Sweetimator, 500
# evaluations), then refine its top 4 with 2 epochs on 2,000 images; 5 seeds, with and without.
# Zero-cost scores replay the all-cells correlate folder (a search replays live scoring exactly), so
# the time measured is the refinement's; drop STORE= to score live as well.
set -euo pipefail
cd "$(dirname "$0")/.."
EVONAS=${EVONAS:-.venv/bin/evonas}
STORE=${STORE-benchmarks/consistency_all/store}
TRUTH=../shared/benchmarks/nb201_accuracy.csv
OUT=runs/refine_bench
for seed in ${SEEDS:-0 1 2 3 4}; do
  for mode in zero-cost refined; do
    dir="$OUT/$mode-$seed"
    extra=(); [ "$mode" = refined ] && extra=(--refine-top 4 --refine-epochs 2 --refine-images 2000)
    [ -f "$dir/best.json" ] || OMP_NUM_THREADS=1 $EVONAS search --space nb201 --estimator sweet --budget 500 \
        --seed "$seed" --scoring-seed 0 --interval 1e-4 5e-4 --data-dir ../shared/data ${STORE:+--score-store "$STORE"} \
        --run-dir "$dir" "${extra[@]}" > /dev/null
  done
done
for mode in zero-cost refined; do
  $EVONAS compare "$OUT/$mode-"* --truth "$TRUTH" --title "Sweetimator, $mode" --markdown "$OUT/$mode.md" > /dev/null
done
MD=benchmarks/refine_nb201.md
NOTES="<!-- notes below: kept when benchmarks/refine_nb201.sh rewrites this file -->"
kept=$([ -f "$MD" ] && sed -n "/^<!-- notes below/,\$p" "$MD" | tail -n +2 || true)
{ echo "# Training-refined head on NB-201"; echo
  echo "Regenerate with \`bash benchmarks/refine_nb201.sh\` (zero-cost scores from \`$STORE\`, scoring seed 0)."
  for mode in zero-cost refined; do echo; sed 's/^# /## /' "$OUT/$mode.md"; done
  echo; echo "$NOTES"; printf '%s\n' "$kept"; } > "$MD"
echo "wrote $MD"
