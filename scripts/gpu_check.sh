#!/usr/bin/env bash
# One pass over everything CUDA in evonas, for the first machine with a GPU (under 8 minutes on one GPU).
#
#   scripts/gpu_check.sh [RESULTS_FILE]        # default: benchmarks/gpu_check.md
#
# 1. the tests marked `gpu` (CUDA scores = CPU scores within tolerance for sweet, sweet_snip,
#    sweet_ntk and synflow; mixed-precision training runs and resumes; channels-last) and the
#    fake-GPU placement test (on a real GPU some actors now really score on CUDA);
# 2. the GPU rows of the benchmarks: Sweetimator scoring speed on CUDA vs CPU (sweet_speed.sh has
#    no --device flag, so this times the scoring path itself), train_throughput.sh with DEVICE=cuda,
#    throughput.sh (its Ray workers take the GPU automatically; its in-process row stays on CPU);
# 3. a short NB-201 search with 4 fractional (0.25 GPU) Ray actors, then `evonas show`.
# Each step has its own time limit (470 s in all); a failing step is recorded and the next one still runs.
# Data: CIFAR-10 from $EVONAS_DATA (or ../shared/data); synthetic data, labelled so, when absent.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
EVONAS=${EVONAS:-.venv/bin/evonas}
RESULTS=${1:-benchmarks/gpu_check.md}
WORK=$(mktemp -d -t evonas-gpu-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
DATA=${EVONAS_DATA:-../shared/data}
if [ -d "$DATA/cifar-10-batches-py" ]; then DATASET=cifar10; else DATASET=synthetic; DATA=""; fi
FAILED=0

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch sees no CUDA device here ($("$PY" -c 'import torch; print(torch.__version__)')); nothing to check" >&2
    exit 2
fi

{
    echo "# GPU check"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), dataset $DATASET"
    echo
    echo '```'
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi not found"
    "$PY" -c "import torch, ray; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| ray', ray.__version__, '| device', torch.cuda.get_device_name(0))"
    echo '```'
} > "$RESULTS"

step() {  # step TITLE SECONDS COMMAND...: run with a time limit, append its output and status to RESULTS
    local title=$1 limit=$2; shift 2
    local began=$SECONDS status
    echo "== $title" >&2
    timeout --signal=INT --kill-after=15 "$limit" "$@" > "$WORK/out.txt" 2>&1
    status=$?
    [ $status -eq 0 ] || FAILED=1
    {
        echo
        echo "## $title: $([ $status -eq 0 ] && echo passed || echo "FAILED (exit $status)") in $((SECONDS - began)) s"
        echo
        echo '```'
        echo "\$ $*"
        tail -n 40 "$WORK/out.txt"
        echo '```'
    } >> "$RESULTS"
}

step "tests marked gpu, and fake-GPU placement" 120 \
    "$PY" -m pytest -q -m gpu tests/test_gpu.py tests/test_gpu_placement.py -p no:cacheprovider

step "Sweetimator scoring speed, CUDA vs CPU (NB-201, batch 64)" 60 "$PY" - "$DATASET" "$DATA" <<'EOF'
import random, sys, time
import torch
import search_spaces
from evonas.scoring import Scorer
from evonas.settings import ScoringSettings
dataset, data_dir = sys.argv[1], sys.argv[2] or None
space = search_spaces.get("nb201")
rng = random.Random(0)
cells = [space.to_str(space.sample(rng)) for _ in range(40)]
config = ScoringSettings(space="nb201", estimator="sweet", estimator_settings={"interval": (1e-4, 5e-4)},
                         dataset=dataset, data_dir=data_dir, batch_size=64)
torch.set_num_threads(1)
for device in ("cuda", "cpu"):
    scorer = Scorer(config, device=device)
    scorer.score(cells[0])  # warm-up (cuDNN autotune, allocator)
    n = len(cells) if device == "cuda" else 10
    began = time.perf_counter()
    for i, g in enumerate(cells[:n]):
        scorer.score(g, eval_id=i)
    if device == "cuda":
        torch.cuda.synchronize()
    per = (time.perf_counter() - began) / n
    print(f"{device}: {per * 1e3:.1f} ms per evaluation ({1 / per:.1f} eval/s, {n} cells, 1 CPU thread)")
EOF

step "training throughput on CUDA (evonas train, AMP + channels-last)" 90 \
    env DEVICE=cuda EPOCHS=2 OUT="$WORK/train_throughput_gpu" benchmarks/train_throughput.sh

step "executor throughput (Ray workers on the GPU)" 90 \
    env N=40 DATASET="$DATASET" DATA="${DATA:-}" OUT="$WORK/throughput_gpu" benchmarks/throughput.sh

step "short search, 4 actors x 0.25 GPU" 90 \
    "$EVONAS" search --space nb201 --estimator sweet --dataset "$DATASET" ${DATA:+--data-dir "$DATA"} \
    --interval 1e-4 5e-4 --budget 120 --workers 4 --gpus-per-worker 0.25 --run-dir "$WORK/search"
step "the search's summary" 20 "$EVONAS" show "$WORK/search"

echo >> "$RESULTS"
echo "Overall: $([ $FAILED -eq 0 ] && echo 'every step passed' || echo 'SOME STEPS FAILED')" >> "$RESULTS"
echo "gpu_check: results in $RESULTS" >&2
exit $FAILED
