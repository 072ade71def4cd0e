#!/usr/bin/env bash
# NAS-Bench-Macro (Su et al., CVPR 2021) through the examples/nbmacro plug-in: the commands behind
# benchmarks/nbmacro.md and nbmacro.json. Run from the repository root with ../shared present; about
# 45 CPU-minutes (2 Ray workers where there are 2 cores).
# Regenerate: benchmarks/nbmacro.sh
# Smoke: SAMPLE=6 BUDGET=25 SEEDS=0 ARCHS=3 ALL_TABLE=<a few rows of the table> OUT=runs/nbm-smoke JSON=runs/nbm-smoke/nbmacro.json
#        INSTALL=0 PYTHONPATH=<a folder with the plug-in installed> benchmarks/nbmacro.sh
set -euo pipefail
export OMP_NUM_THREADS=1 RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=disabled
SHARED=${EVONAS_SHARED:-../shared} OUT=${OUT:-runs/nbmacro-bench} JSON=${JSON:-benchmarks/nbmacro.json}
SAMPLE=${SAMPLE:-200} BUDGET=${BUDGET:-300} SEEDS=${SEEDS:-0 1 2 3 4} ARCHS=${ARCHS:-100}
export EVONAS_CACHE=${EVONAS_CACHE:-$OUT/cache}   # calibration of this benchmark only
TABLE=$SHARED/benchmarks/nbmacro_cifar10.csv DATA=$SHARED/data
ALL_TABLE=${ALL_TABLE:-$TABLE}
E="nice -n 10 .venv/bin/evonas"
mkdir -p "$OUT"
if [ "${INSTALL:-1}" = 1 ]; then .venv/bin/python -m pip install -q --no-deps -e examples/nbmacro; fi  # as a user does
$E spaces | grep nbmacro
C="$E correlate --space nbmacro --truth-column test_accuracy --data-dir $DATA"

# 1. Seconds of one score (batch 64, CIFAR-10) of three networks: `seconds` per line of time_one/scores.jsonl.
{ head -1 "$TABLE"; grep -E '^(11111111|12012012|22222222),' "$TABLE"; } > "$OUT/three.csv"
$C --archs-file "$OUT/three.csv" --estimator sweet,sweet_ntk,nwot,synflow,flops --interval 1e-4 5e-4 --out "$OUT/time_one"
# 2. The space's own Sweetimator calibration (seeded-random networks, one fixed batch).
$E calibrate --space nbmacro --dataset cifar10 --data-dir "$DATA" --archs "$ARCHS" --seed 0 | tee "$OUT/calibrate.txt"
# 3. Consistency on seeded-random networks of the table: NB-201's interval, then the calibrated one (step 2's cache).
$C --truth "$TABLE" --sample "$SAMPLE" --seed 0 --interval 1e-4 5e-4 --executor ray --workers 2 --out "$OUT/c200_nb201" \
    --estimator sweet,sweet_snip,sweet_ntk,params,flops,synflow,nwot,sweet_ntk+flops
$C --truth "$TABLE" --sample "$SAMPLE" --seed 0 --estimator sweet,sweet_ntk+flops --executor ray --workers 2 \
    --out "$OUT/c200_calibrated"
# ... and the table's own params and FLOPs columns over all 6,561 networks (beside the flops estimator).
$C --archs-file "$ALL_TABLE" --estimator flops --table-columns params,flops --executor ray --workers 2 --out "$OUT/all_table"
# ... and nwot over all of them (about 90 CPU-minutes; the folder committed as benchmarks/nbmacro/nwot_all).
[ "${ALL_NWOT:-0}" = 1 ] && $C --archs-file "$ALL_TABLE" --estimator nwot --table-columns flops,params --seed 0 \
    --out "$OUT/all_nwot"
# 4. Searches, 5 seeds each: nwot (the best ranker of step 3) and flops (the cheapest strong one).
for estimator in nwot flops; do
    for seed in $SEEDS; do
        $E search --space nbmacro --estimator "$estimator" --budget "$BUDGET" --seed "$seed" --data-dir "$DATA" \
            --truth "$TABLE" --run-dir "$OUT/search-$estimator-$seed" >/dev/null
    done
done

# 5. The numbers of benchmarks/nbmacro.md, gathered from the folders above into $JSON.
.venv/bin/python - "$OUT" "$TABLE" "$JSON" <<'EOF'
import csv, json, sys
from pathlib import Path
out, acc = Path(sys.argv[1]), {r["arch"]: float(r["test_accuracy"]) for r in csv.DictReader(open(sys.argv[2]))}
summary = lambda run: json.loads((out / run / "summary.json").read_text())["results"]
result = {"calibrated_interval": next(l for l in (out / "calibrate.txt").read_text().splitlines() if l.startswith("interval:")),
          "seconds_per_score": [json.loads(l) for l in (out / "time_one" / "scores.jsonl").read_text().splitlines()],
          "table_columns_all_6561": summary("all_table"),
          "correlate": {run: summary(run) for run in ("c200_nb201", "c200_calibrated")}, "search": {}}
for run in sorted(out.glob("search-*")):
    best = json.loads((run / "best.json").read_text())["best"]["genotype"]
    result["search"][run.name] = {"genotype": best, "accuracy": acc[best], "rank": 1 + sum(v > acc[best] for v in acc.values())}
Path(sys.argv[3]).write_text(json.dumps(result, indent=1) + "\n")
print(json.dumps(result["search"], indent=1))
EOF
