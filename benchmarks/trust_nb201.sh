#!/usr/bin/env bash
# `evonas trust` on NB-201 with the table as a check (benchmarks/trust.md, sections "nb201" and
# "nb201-longer"): seeded cells trained briefly on the CIFAR-10 subset; the estimators are judged
# against that short training and, for the same cells, against the NB-201 table (200 epochs).
# Rerunning continues each folder (finished trainings and scores are read back).
set -euo pipefail
cd "$(dirname "$0")/.."
COMMON=(--space nb201 --estimator sweet,synflow,nwot --interval 1e-4 5e-4 --seed 0 --data-dir ../shared/data
        --truth ../shared/benchmarks/nb201_accuracy.csv)
trust() {  # SECTION FLAGS...: run evonas trust into runs/trust_bench/SECTION, then put its report in trust.md
  local name=$1 out=runs/trust_bench/$1; shift
  local cmd=(evonas trust "${COMMON[@]}" "$@" --out "$out")
  OMP_NUM_THREADS=1 nice -n 10 .venv/bin/"${cmd[@]}"
  .venv/bin/python - "$name" "$out" "${cmd[*]}" <<'PY'
import pathlib, sys
name, out, cmd = sys.argv[1:]
md = pathlib.Path("benchmarks/trust.md")
begin, end = f"<!-- {name} begin -->", f"<!-- {name} end -->"
text = md.read_text() if md.exists() else f"{begin}\n{end}\n"
head, rest = text.split(begin, 1)
body = f"Regenerate: `bash benchmarks/trust_nb201.sh`, which runs\n\n```\n{cmd}\n```\n\n"
body += (pathlib.Path(out) / "trust.md").read_text().replace("# evonas trust", "### evonas trust", 1)
body = body.replace("\n## Against the table", "\n#### Against the table")
md.write_text(head + begin + "\n" + body + "\n" + end + rest.split(end, 1)[1])
PY
}
# 12 cells, 1 epoch on 1,000 images at batch 64 (16 SGD steps): about 9 min on one busy CPU core.
trust nb201 --sample 12 --epochs 1 --images 1000 --test-images 1000 --train-batch-size 64
# 8 cells, 4 epochs on 500 images at batch 32 (64 SGD steps): about 10 min.
trust nb201-longer --sample 8 --epochs 4 --images 500 --test-images 500 --train-batch-size 32
