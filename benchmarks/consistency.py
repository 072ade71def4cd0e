"""Consistency of every registered estimator on NAS-Bench-201 / CIFAR-10 (resumable).

Scores a seeded-random sample of NB-201 cells with each estimator through the normal
scoring path and writes ``benchmarks/consistency.md`` / ``.json``: Spearman, Kendall,
top-10% precision and seconds per cell beside the published numbers.

CPU time decides what fits, so: the three Sweetimator variants share one build and one
backward pass per cell (checked identical to the normal path on the first cells); cheap
estimators go next, to the full sample; the rest advance round by round (``--rounds``),
so a run stopped early leaves every estimator on a comparable prefix of the same sample.
Each estimator's per-cell scores are appended to ``<work>/<estimator>.csv`` as they come:
a killed run resumes where it stopped, ``--report`` re-tables whatever exists, and several
processes started alike share the work (per-estimator lock files).

    nice .venv/bin/python benchmarks/consistency.py --probe 20   # time each estimator alone first
    nice .venv/bin/python benchmarks/consistency.py              # the run (1,000 cells, seed 0)
    .venv/bin/python benchmarks/consistency.py --report          # re-table what exists

Data: NAS-Bench-201 / NATS-Bench topology accuracies (Dong et al.) and the proxy scores
published with NAS-Bench-Suite-Zero (Krishnakumar et al., 2022), from ../shared.
"""
from __future__ import annotations

import argparse
import ast
import csv
import datetime as dt
import hashlib
import inspect
import json
import math
import os
import platform
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

import estimators
import search_spaces
from estimators._shared_pass import WEIGHT_GRADIENTS, shared_pass
from evonas import correlating as corr
from evonas.correlating.report import json_safe
from evonas.data import load_dataset
from evonas.execution import make_executor
from evonas.scoring import (
    Scorer,
    build_model,
    estimator_class,
    parse_estimators,
    resolve_interval,
    seeded_rng,
)
from evonas.seeding import init_seed
from evonas.settings import ScoringSettings
from evonas.user_errors import USER_ERRORS
from search_spaces.benchmark import Cell

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS_DIR = Path(estimators.__file__).resolve().parent
SHARED = Path(os.environ.get("EVONAS_SHARED", ROOT.parent / "shared"))
HERE = Path(__file__).resolve().parent

#: Spearman vs CIFAR-10 test accuracy of NAS-Bench-Suite-Zero's scores on its 9,445 NB-201 cells.
SUITE_ZERO = {
    "nwot": 0.81, "jacov": 0.80, "params": 0.80, "synflow": 0.78, "epe_nas": 0.77, "flops": 0.77,
    "l2_norm": 0.75, "snip": 0.60, "grad_norm": 0.60, "fisher": 0.55, "grasp": 0.54, "zen": 0.12, "plain": -0.35,
}
#: Spearman on NB-201 reported by the Sweetimator papers (DESIGN.md section 2).
SWEET_PAPER = {"sweet": 0.89, "sweet_snip": 0.90, "sweet_ntk": 0.91, "gradsign": 0.81, "params": 0.75, "synflow": 0.77}
#: Spearman targets this project must reach (issue 3, section 5).
TARGETS = {"sweet": 0.88, "sweet_snip": 0.89, "sweet_ntk": 0.89}
#: Run order: the targets first, then the rest by name.
FIRST = ("sweet", "sweet_snip", "sweet_ntk")
FIELDS = ("index", "arch", "truth", "score", "seconds", "error")
#: Cells on which the shared-gradient Sweetimator pass is checked against the normal path.
VERIFY_CELLS = 10


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="cells in the sample (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample, init and batches")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--estimators", default="all", help="comma-separated names, or all registered")
    p.add_argument("--cells", default="", help="per-estimator cell counts, e.g. zico=300,grasp=500")
    p.add_argument("--truth", type=Path, default=SHARED / "benchmarks" / "nb201_accuracy.csv")
    p.add_argument("--reference", type=Path, default=SHARED / "benchmarks" / "nb201_reference_proxies_cifar10.csv")
    p.add_argument("--data-dir", type=Path, default=SHARED / "data")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "consistency", help="per-cell score files")
    p.add_argument("--out", type=Path, default=HERE / "consistency", help="writes OUT.md and OUT.json")
    p.add_argument("--probe", type=int, default=0, help="only time each estimator on this many cells")
    p.add_argument("--report", action="store_true", help="only rebuild the table from the work folder")
    p.add_argument("--recheck", type=int, default=0, metavar="K",
                   help="re-score the first K recorded cells of each estimator with the current code and record "
                        "whether the scores are identical (after an estimator file, or a helper it imports, "
                        "changed mid-run)")
    p.add_argument("--rounds", default="50,100,250,500",
                   help="cell counts the non-Sweetimator estimators reach in turn (all of them, round by round), "
                        "so a run stopped early leaves comparable N")
    p.add_argument("--cheap", type=float, default=0.6,
                   help="estimators under this many seconds per cell in the --probe run go first, to full N")
    return p.parse_args()


def sample(args: argparse.Namespace) -> list[Cell]:
    table = search_spaces.get("nb201").benchmark(args.truth)
    cells = corr.sample_cells(table.cells("cifar10_test"), args.n, args.seed)
    table.check_genotypes(cells)
    return cells


def plan(args: argparse.Namespace) -> dict[str, int]:
    """Every registered estimator -> number of cells (a prefix of the sample), in run order."""
    names = list(estimators.available())
    names = [n for n in FIRST if n in names] + [n for n in names if n not in FIRST]
    counts = {n: args.n for n in names}
    for item in filter(None, args.cells.split(",")):
        name, _, count = item.partition("=")
        counts[name.strip()] = min(args.n, int(count))
    return counts


def rounds(args: argparse.Namespace, counts: dict[str, int]) -> list[dict[str, int]]:
    """Cell targets per estimator, round by round: cheap estimators (``--probe`` seconds per cell
    under ``--cheap``) to full N at once, then every estimator to each ``--rounds`` step, then to
    its full count."""
    probe = probe_seconds(args, counts)
    cheap = {n: c for n, c in counts.items() if probe.get(n, math.inf) < args.cheap}
    steps = [int(x) for x in filter(None, args.rounds.split(","))]
    return [cheap, *({n: min(step, c) for n, c in counts.items()} for step in steps), counts]


def probe_seconds(args: argparse.Namespace, counts: dict[str, int]) -> dict[str, float]:
    """Mean seconds per cell of each estimator scored alone by ``--probe`` (those that ran)."""
    out = {}
    for name in counts:
        rows = done_rows(args.work / "probe" / f"{name}.csv")
        if rows:
            out[name] = sum(float(r["seconds"]) for r in rows) / len(rows)
    return out


@contextmanager
def claimed(work: Path, name: str) -> Iterator[bool]:
    """Whether this process may score ``name`` now (a lock file holding its pid), so several
    benchmark processes can share one work folder; a dead process's lock is taken over."""
    lock = work / f"{name}.lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or 0), 0)
                yield False  # another live process is scoring it
                return
            except (ProcessLookupError, ValueError, FileNotFoundError):
                lock.unlink(missing_ok=True)
    else:
        yield False
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    try:
        yield True
    finally:
        lock.unlink(missing_ok=True)


def done_count(args: argparse.Namespace, name: str) -> int:
    return len(done_rows(args.work / f"{name}.csv"))


def done_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def package_module(dotted: str) -> Path | None:
    """The file of ``estimators[.sub...]`` (None for a name outside the estimators package)."""
    parts = dotted.split(".")
    if parts[0] != "estimators":
        return None
    base = ESTIMATORS_DIR.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_files(path: Path) -> set[Path]:
    """The estimators/ files that the module at ``path`` imports from (absolute or relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: estimators' modules sit directly in the package folder
                module = ".".join(filter(None, ["estimators", module]))
            # ``from estimators import fisher`` names a submodule; ``from estimators import register`` does not
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(p for p in map(package_module, names) if p is not None)
    return found


def source_files(name: str) -> list[Path]:
    """The estimator's source file and every estimators/ module it imports, directly or through another."""
    todo = [Path(inspect.getsourcefile(estimators.available()[name])).resolve()]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imported_files(path) - seen)
    return sorted(seen)


def source_sha(name: str) -> str:
    """Fingerprint of the estimator's source and the estimators/ helpers it imports (base.py,
    _torch_utils.py, ...): a change to any of them after scoring makes its row stale."""
    digest = hashlib.sha256()
    for path in source_files(name):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def estimator_settings(name: str, args: argparse.Namespace) -> dict:
    """Constructor settings: the calibrated (cached) interval for the Sweetimator family, else none."""
    if not estimator_class(name).needs_calibration:
        return {}
    lo, hi = resolve_interval("nb201", "cifar10", data_dir=str(args.data_dir), batch_size=args.batch_size,
                              seed=args.seed)
    return {"interval": (float(lo), float(hi))}


def config_for(name: str, args: argparse.Namespace) -> ScoringSettings:
    settings = estimator_settings(name, args)
    return ScoringSettings(space="nb201", estimator=name, estimator_settings=settings, dataset="cifar10",
                         data_dir=str(args.data_dir), batch_size=args.batch_size, seed=args.seed)


class ScoreLog:
    """Appends one flushed CSV row per scored cell to ``<work>/<estimator>.csv``."""

    def __init__(self, path: Path, config: ScoringSettings, total: int) -> None:
        if path.is_file():  # drop a row cut short by a killed run
            text = path.read_bytes()
            path.write_bytes(text[: text.rfind(b"\n") + 1])
        self.name, self.total, self.done = config.estimator, total, len(done_rows(path))
        if not self.done:  # the code that produced the first row; report() flags later changes
            path.with_suffix(".settings.json").write_text(
                json.dumps({"settings": config.estimator_settings, "source_sha": source_sha(self.name)}) + "\n")
        self._fh = path.open("a" if self.done else "w", newline="")
        self._writer = csv.DictWriter(self._fh, FIELDS)
        if not self.done:
            self._writer.writeheader()

    def add(self, i: int, cell: Cell, score: float | None, seconds: float, error: str | None) -> None:
        if i < self.done:  # already recorded by an earlier (interrupted) run
            return
        self._writer.writerow({"index": i, "arch": cell.arch, "truth": cell.truth,
                               "score": repr(math.nan if score is None else score),
                               "seconds": f"{seconds:.4f}", "error": error or ""})
        self._fh.flush()
        self.done = i + 1
        if self.done % 50 == 0 or self.done == self.total:
            print(f"  {self.name}: {self.done}/{self.total}  {time.strftime('%H:%M:%S')}", flush=True)

    def close(self) -> None:
        self._fh.close()


def recheck(name: str, cells: list[Cell], k: int, args: argparse.Namespace, data) -> bool:
    """Re-score the first ``k`` recorded cells with the current code; True when all are identical."""
    rows = done_rows(args.work / f"{name}.csv")[:k]
    meta = json.loads((args.work / f"{name}.settings.json").read_text())
    config = ScoringSettings(space="nb201", estimator=name, estimator_settings=meta["settings"], dataset="cifar10",
                           data_dir=str(args.data_dir), batch_size=args.batch_size, seed=args.seed)
    scorer = Scorer(config, dataset=data)
    mismatches = []
    for i, row in enumerate(rows):
        res = scorer.score(cells[i].arch, eval_id=i)
        if repr(res.score if res.ok else math.nan) != row["score"]:
            mismatches.append({"index": i, "recorded": row["score"], "now": res.score})
    (args.work / f"{name}.recheck.json").write_text(json.dumps(
        {"cells": len(rows), "identical": not mismatches, "source_sha": source_sha(name), "mismatches": mismatches}
    ) + "\n")
    return not mismatches


def run_estimator(name: str, cells: list[Cell], args: argparse.Namespace, data) -> None:
    """Score the cells not yet in the estimator's file, in process and in cell order."""
    config = config_for(name, args)
    log = ScoreLog(args.work / f"{name}.csv", config, len(cells))
    try:
        if log.done < len(cells):
            with make_executor(config, "local", dataset=data) as pool:
                corr.score_cells(pool, config, cells[log.done:],
                                 lambda i, *rest: log.add(i, cells[i], *rest), start=log.done)
    finally:
        log.close()


def run_sweet_family(names: list[str], cells: list[Cell], args: argparse.Namespace, data) -> None:
    """All Sweetimator variants from one build + backward per cell (``seconds`` is that shared time).

    The first ``VERIFY_CELLS`` cells are also scored the normal way, one Scorer per
    estimator; any difference stops the run, so the shortcut provably changes no score.
    """
    configs = {n: config_for(n, args) for n in names}
    logs = {n: ScoreLog(args.work / f"{n}.csv", configs[n], len(cells)) for n in names}
    start = min(log.done for log in logs.values())
    shared = Scorer(configs[names[0]], dataset=data)
    members = {n: shared.estimator if n == names[0] else estimators.get(n, **configs[n].estimator_settings)
               for n in names}
    marker = args.work / "sweet_family.json"
    verified = json.loads(marker.read_text())["verified_cells"] if marker.is_file() else 0
    try:
        for i in range(start, len(cells)):
            began = time.perf_counter()
            graph = shared.space.from_str(cells[i].arch)
            seed = init_seed(shared.config.seed, shared.space.canonical_key(graph))
            # exactly Scorer.score's path: the build and the estimators on one seeded torch RNG stream
            with shared_pass({WEIGHT_GRADIENTS}), seeded_rng(seed, shared.device):
                model = build_model(shared.space, graph, shared.dataset.num_classes, shared.build_options,
                                    shared.device)
                model.train()
                units = shared.space.depth_units(model)
                results = {n: est.evaluate(model, shared.batches(i), units) for n, est in members.items()}
            seconds = time.perf_counter() - began
            if i < VERIFY_CELLS:
                for n in names:
                    alone = Scorer(configs[n], dataset=data).score(cells[i].arch, eval_id=i)
                    if (alone.score, alone.status) != (results[n].score, results[n].status):
                        raise SystemExit(f"{n} cell {i}: shared-gradient score {results[n].score!r} != "
                                         f"per-estimator score {alone.score!r}; do not use the shortcut")
                verified = max(verified, i + 1)
                marker.write_text(json.dumps({"estimators": names, "verified_cells": verified}) + "\n")
            for n, res in results.items():
                logs[n].add(i, cells[i], res.score if res.ok else None, seconds, res.error)
    finally:
        for log in logs.values():
            log.close()


def reference_scores(path: Path) -> dict[str, dict[str, float]]:
    """NAS-Bench-Suite-Zero scores by arch string (empty if the file is absent)."""
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        return {row.pop("arch"): {k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)}


def results(args: argparse.Namespace, cells: list[Cell], counts: dict[str, int]) -> dict[str, dict]:
    """Statistics per estimator from the work folder, over the whole sample prefix and over the
    cells NAS-Bench-Suite-Zero also scored (with their score on those same cells beside ours)."""
    ref = reference_scores(args.reference)
    out = {}
    for name in counts:
        rows = done_rows(args.work / f"{name}.csv")
        if not rows:
            continue
        for i, row in enumerate(rows):  # the file must be a prefix of this sample
            if row["arch"] != cells[i].arch:
                raise SystemExit(f"{args.work}/{name}.csv row {i} is from another sample; delete it to rerun")
        scores = [float(r["score"]) for r in rows]  # "nan" marks a failed cell
        truth = [float(r["truth"]) for r in rows]
        stats = corr.summarize(scores, truth, [float(r["seconds"]) for r in rows])
        shared = [i for i, r in enumerate(rows) if r["arch"] in ref]
        stats["ref_cells"] = len(shared)
        stats["spearman_ref_cells"] = corr.spearman([scores[i] for i in shared], [truth[i] for i in shared])
        if name in next(iter(ref.values()), {}):
            stats["suite_zero_same_cells"] = corr.spearman([ref[rows[i]["arch"]][name] for i in shared],
                                                           [truth[i] for i in shared])
        meta = json.loads((args.work / f"{name}.settings.json").read_text())
        stats["settings"] = meta["settings"]
        stats["source_changed"] = meta["source_sha"] != source_sha(name)
        recheck_file = args.work / f"{name}.recheck.json"
        if stats["source_changed"] and recheck_file.is_file():
            recheck = json.loads(recheck_file.read_text())
            if recheck["source_sha"] == source_sha(name) and recheck["identical"]:
                stats["source_changed"], stats["rechecked_cells"] = False, recheck["cells"]
        stats["planned"] = counts[name]
        stats["errors"] = sorted({r["error"] for r in rows if r["error"]})[:5]
        out[name] = stats
    return out


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` in one step (several processes may report at once)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_report(args: argparse.Namespace, res: dict[str, dict], record: dict) -> None:
    """benchmarks/consistency.json (everything) and .md (the table and how it was made)."""
    marker = args.work / "sweet_family.json"
    shared = json.loads(marker.read_text()) if marker.is_file() else None
    probe = record.get("probe_seconds", {})
    atomic_write(args.out.with_suffix(".json"),
                 json.dumps(json_safe({**record, "shared_sweet_pass": shared, "results": res}), indent=2) + "\n")
    lines = [
        "# Estimator consistency on NAS-Bench-201 / CIFAR-10",
        "",
        f"Generated by `benchmarks/consistency.py` (started {record['started']}, last update {record['finished']}).",
        "Truth: CIFAR-10 test accuracy after 200 epochs (`cifar10_test`, NAS-Bench-201 / NATS-Bench topology",
        f"benchmark, Dong et al.). Cells: {args.n:,} drawn by `random.Random({args.seed}).sample` from all 15,625",
        f"rows of `nb201_accuracy.csv`; a row with N < {args.n:,} used the first N cells of that same sample.",
        f"Scoring: the normal `Scorer` path, NB-201 proxy network {record['build_options']}, default init seeded",
        f"per cell, one fixed batch of {args.batch_size} augmented training images (seed {args.seed}) from the shared",
        f"CIFAR-10 subset (`data_batch_1`, {record['images']:,} images), CPU, {record['threads']} torch thread,",
        "`nice`d on a shared 2-core machine (seconds are wall time including the model build: indicative only).",
        "Failed cells are excluded from the statistics and counted.",
        "",
        "Columns: *rho*, *tau* and *top-10%* (share of the truly best 10% that the estimator's best 10% holds)",
        "on the N cells; *rho (ref cells)*: on the sampled cells that NAS-Bench-Suite-Zero also scored (cells",
        "whose every op reaches the output); *Suite-Zero, same cells*: Spearman of the published",
        "NAS-Bench-Suite-Zero scores on those same cells; *published*: Suite-Zero on its 9,445 cells",
        "(Krishnakumar et al., 2022) and the Sweetimator papers (DESIGN.md section 2); *s/cell*: in this run;",
        "*s/cell alone*: each estimator by itself on the first cells (`--probe`).",
        "",
        "| estimator | N | failed | rho | tau | top-10% | rho (ref cells) | Suite-Zero, same cells "
        "| published Suite-Zero | published Sweet paper | target | s/cell | s/cell alone | interval |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for name, r in res.items():
        n = f"{r['n']:,}" + ("" if r["n"] >= r["planned"] else f" of {r['planned']:,} (partial)")
        target = TARGETS.get(name)
        verdict = "-" if target is None else f">= {target} " + ("met" if r["spearman"] >= target else "**missed**")
        iv = r["settings"].get("interval")
        per_cell = fmt(r["seconds_per_cell"]) + (" (shared)" if shared and name in shared["estimators"] else "")
        lines.append(
            f"| {name}{' (code changed since)' if r['source_changed'] else ''} | {n} | {r['failed']} | {fmt(r['spearman'])} | {fmt(r['kendall'])} | "
            f"{fmt(r['top10_precision'], '.2f')} | {fmt(r['spearman_ref_cells'])} (n={r['ref_cells']}) | "
            f"{fmt(r.get('suite_zero_same_cells'))} | {fmt(SUITE_ZERO.get(name), '.2f')} | "
            f"{fmt(SWEET_PAPER.get(name), '.2f')} | {verdict} | {per_cell} | {fmt(probe.get(name))} | "
            f"{f'[{iv[0]:g}, {iv[1]:g})' if iv else '-'} |"
        )
    if shared:
        lines += ["", f"(shared): {', '.join(shared['estimators'])} read the same gradients, so each cell was built",
                  "and back-propagated once for all of them (`estimators._shared_pass`); the time is for the three",
                  f"together. The first {shared['verified_cells']} cells were also scored the normal way, one Scorer",
                  "per estimator, and gave identical scores (the run stops otherwise)."]
    rechecked = {n: r["rechecked_cells"] for n, r in res.items() if r.get("rechecked_cells")}
    if rechecked:
        lines += ["", "Estimator files (or estimators/ helpers they import) edited after these rows were started",
                  "were re-scored on their first cells with the final code (`--recheck`), identical: "
                  + ", ".join(f"{n} ({k})" for n, k in rechecked.items())
                  + ". Rows marked *code changed since* were not."]
    missing = [n for n in record["planned"] if n not in res]
    if missing:
        lines += ["", f"Not run (no cells scored yet): {', '.join(missing)}."]
    errors = {n: r["errors"] for n, r in res.items() if r["errors"]}
    if errors:
        lines += ["", "Failure reasons (first few distinct):", ""]
        lines += [f"- {n}: {'; '.join(e)}" for n, e in errors.items()]
    atomic_write(args.out.with_suffix(".md"), "\n".join(lines) + "\n")


def versions() -> dict[str, str]:
    """Versions of what produced the numbers (recorded in the .json)."""
    import scipy

    from evonas.version import __version__

    return {"evonas": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__}


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still closes the score files
    args = parse_args()
    torch.set_num_threads(1)
    cells = sample(args)
    counts = plan(args)
    chosen = list(counts) if args.estimators == "all" else parse_estimators(args.estimators)
    if args.probe:
        args.work = args.work / "probe"
        counts = {n: min(args.probe, c) for n, c in counts.items()}
    args.work.mkdir(parents=True, exist_ok=True)
    data = load_dataset("cifar10", split="train", data_dir=str(args.data_dir))
    record = {
        "space": "nb201", "dataset": "cifar10", "n": args.n, "seed": args.seed, "batch_size": args.batch_size,
        "truth": "cifar10_test", "data_dir": str(args.data_dir), "planned": counts, "threads": torch.get_num_threads(),
        "build_options": search_spaces.get("nb201").proxy_options(), "images": len(data),
        "versions": versions(), "loadavg_at_start": os.getloadavg(), "started": now(),
    }
    previous = args.out.with_suffix(".json")
    if previous.is_file():  # a resumed run keeps the first start time
        record["started"] = json.loads(previous.read_text()).get("started") or record["started"]

    def report() -> None:
        if args.probe:
            return
        record["probe_seconds"] = probe_seconds(args, counts)
        record["finished"] = now()
        write_report(args, results(args, cells, counts), record)

    family = [] if args.probe else [n for n in FIRST if n in chosen and counts[n] == counts[FIRST[0]]]
    if args.recheck:
        for name in chosen:
            if done_count(args, name):
                same = recheck(name, cells, args.recheck, args, data)
                print(f"{name}: first {args.recheck} cells {'identical' if same else 'DIFFER'} with the current code")
    elif not args.report:
        with claimed(args.work, "sweet_family") as mine:
            if family and mine:
                print(f"{', '.join(family)} (shared gradients): {counts[family[0]]} cells  {time.strftime('%H:%M:%S')}")
                run_sweet_family(family, cells[:counts[family[0]]], args, data)
                report()
        for target in rounds(args, {n: counts[n] for n in chosen if n not in family}):
            for name, count in target.items():
                with claimed(args.work, name) as mine:
                    if mine and done_count(args, name) < count:
                        print(f"{name}: to {count} cells  {time.strftime('%H:%M:%S')}", flush=True)
                        run_estimator(name, cells[:count], args, data)
                        report()
    if args.probe:
        for name, r in results(args, cells, counts).items():
            print(f"{name:12s} {r['seconds_per_cell']:.3f} s/cell  rho={fmt(r['spearman'])} failed={r['failed']}")
        return
    report()
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    try:
        main()
    except USER_ERRORS as exc:  # e.g. ../shared absent: say so in one line
        sys.exit(f"error: {exc}")
