#!/usr/bin/env bash
# `evonas trust` on DARTS, the case it is for: no table, short training is the only truth
# (benchmarks/trust.md, section "darts"). 4 seeded cells, the DARTS recipe (36 channels, 20 cells), 1 epoch
# on 160 images: about 2 min per cell on one busy CPU core; on a GPU use far more cells and images.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/trust_bench/darts}
CMD=(evonas trust --space darts --estimator sweet,synflow,nwot --sample 4 --epochs 1 --images 160
     --test-images 200 --train-batch-size 16 --interval 1e-4 5e-4 --seed 0 --data-dir ../shared/data --out "$OUT")
OMP_NUM_THREADS=1 nice -n 10 .venv/bin/"${CMD[@]}"
# Put the folder's own report between this section's markers in benchmarks/trust.md.
.venv/bin/python - darts "$OUT" "${CMD[*]}" <<'PY'
import pathlib, sys
name, out, cmd = sys.argv[1:]
md = pathlib.Path("benchmarks/trust.md")
begin, end = f"<!-- {name} begin -->", f"<!-- {name} end -->"
text = md.read_text() if md.exists() else f"{begin}\n{end}\n"
head, rest = text.split(begin, 1)
body = f"Regenerate: `bash benchmarks/trust_{name}.sh`, which runs\n\n```\n{cmd}\n```\n\n"
body += (pathlib.Path(out) / "trust.md").read_text().replace("# evonas trust", "### evonas trust", 1)
body = body.replace("\n## Against the table", "\n#### Against the table")
md.write_text(head + begin + "\n" + body + "\n" + end + rest.split(end, 1)[1])
PY
