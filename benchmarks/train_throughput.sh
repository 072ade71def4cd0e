#!/usr/bin/env bash
# Training throughput of `evonas train` (evonas.training.Trainer): images per second of the whole step,
# augmentation included, for an NB-201 cell at the 200E recipe's C=16, N=5, at batch 64 and 128.
# Regenerate: benchmarks/train_throughput.sh            on a GPU: DEVICE=cuda benchmarks/train_throughput.sh
# smoke: BATCHES=1 EPOCHS=1 benchmarks/train_throughput.sh
set -euo pipefail
CELL='|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'
OUT=${OUT:-runs/train_throughput} BATCHES=${BATCHES:-16} EPOCHS=${EPOCHS:-3} DEVICE=${DEVICE:-cpu}
export OMP_NUM_THREADS=1
rm -rf "$OUT"
for bs in 64 128; do
    nice -n 10 .venv/bin/evonas train --space nb201 --genotype "$CELL" --dataset synthetic --device "$DEVICE" \
        --epochs "$EPOCHS" --batch-size "$bs" --train-images $((bs * BATCHES)) --test-images 64 --out "$OUT/b$bs" >/dev/null
    .venv/bin/python -c 'import json, sys; r = json.load(open(sys.argv[1])); rates = [h["images_per_second"] for h in r["history"]]
print("batch %s: %s images/s per epoch (%s, %d channels)" % (sys.argv[2], ", ".join("%.1f" % v for v in rates),
      r["precision"], r["recipe"]["channels"]))' "$OUT/b$bs/result.json" "$bs"
done
