#!/usr/bin/env bash
# Hardware-aware search on NB-201 (benchmarks/multiobjective.md): NSGA-II over (fitness, params) and over
# (fitness, measured Pixel 3 / edge-GPU latency from HW-NAS-Bench), 1,000 evaluations, and constrained
# aging evolution at --max-params 0.6M, 500 evaluations; 5 seeds each. Scores come from the all-cells
# correlate folder (a search replays live scoring exactly); drop STORE= to score live.
set -euo pipefail
cd "$(dirname "$0")/.."
EVONAS=${EVONAS:-.venv/bin/evonas}
STORE=${STORE-benchmarks/consistency_all/store}
TRUTH=../shared/benchmarks/nb201_accuracy.csv
HW=../shared/benchmarks/nb201_hw_cifar10.csv
OUT=runs/multiobjective
FITNESS=${FITNESS:-sweet}
tag=${FITNESS//[+=]/_}
run() {  # run NAME EXTRA-FLAGS...: the seeds of one setup, then their comparison
  local name=$1; shift
  for seed in ${SEEDS:-0 1 2 3 4}; do
    dir="$OUT/$tag-$name-$seed"
    [ -f "$dir/best.json" ] || OMP_NUM_THREADS=1 $EVONAS search --space nb201 --estimator "$FITNESS" --interval 1e-4 5e-4 \
        --seed "$seed" --scoring-seed 0 --data-dir ../shared/data ${STORE:+--score-store "$STORE"} --run-dir "$dir" "$@" > /dev/null
  done
  $EVONAS compare "$OUT/$tag-$name-"* --truth "$TRUTH" --title "$name, \`$FITNESS\`" $BUDGETS \
      --markdown "$OUT/$tag-$name.md" > /dev/null
}
BUDGETS="--budgets params=0.2M,0.4M,0.6M,0.8M,1.0M,1.6M"
run nsga2-params --objectives "$FITNESS,params" --budget 1000
run aging-max0.6M --max-params 0.6M --budget 500
BUDGETS=""
run nsga2-pixel3 --cost-table "$HW" --objectives "$FITNESS,pixel3_latency" --budget 1000
run nsga2-edgegpu --cost-table "$HW" --objectives "$FITNESS,edgegpu_latency" --budget 1000
{ echo "# Hardware-aware search on NB-201, fitness \`$FITNESS\`"; echo
  echo "Regenerate with \`FITNESS='$FITNESS' bash benchmarks/multiobjective.sh\` (scores from \`$STORE\`, all 15,625 cells, scoring seed 0)."
  echo "Hypervolume ratio: the front's true (cost, accuracy) area over the table's, both up to (the table's largest cost, its median accuracy) (\`evonas.fronts\`)."
  for f in "$OUT/$tag"-*.md; do echo; sed 's/^# /## /' "$f"; done; } > "benchmarks/multiobjective_$tag.md"
echo "wrote benchmarks/multiobjective_$tag.md"
