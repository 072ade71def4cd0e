#!/usr/bin/env bash
# `make demo`: a short NB-201 search scored by Sweetimator on CIFAR-10.
# CIFAR-10 comes from --data-dir/EVONAS_DATA/the cache folder, or is downloaded. Only when it can be
# neither found nor downloaded does the demo (not evonas itself) switch to synthetic data, and says so.
set -uo pipefail
EVONAS=${EVONAS:-.venv/bin/evonas}
BUDGET=${BUDGET:-100}

if "$EVONAS" data cifar10; then
    dataset=cifar10
else
    echo "demo: CIFAR-10 could be neither found nor downloaded; running on SYNTHETIC data: every score below is synthetic and says nothing about real accuracy."
    dataset=synthetic
fi
set -e
"$EVONAS" search --space nb201 --estimator sweet --dataset "$dataset" \
    --budget "$BUDGET" --population 20 --sample 5 --seed 0 "$@"
