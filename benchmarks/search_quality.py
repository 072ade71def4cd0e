"""Search quality on NB-201 / CIFAR-10: aging evolution vs random search, both scored by Sweetimator.

For each seed it runs ``evonas search`` (P=25, S=5, fixed interval [1e-4, 5e-4)) and a random
search with the same budget and the same scoring (aging evolution with P = budget never
leaves its random initial phase, so it *is* random search, through the same driver, cache
and run folder). The returned cell of a run is its best-scored cell; its true accuracy is
the 200-epoch CIFAR-10 test accuracy in the NAS-Bench-201 table. Runs are resumable:
rerunning the script finishes unfinished run folders and skips finished ones. The result
files are rebuilt from the finished run folders after every run (and with --report-only), so
a partial benchmark still reports what it did, and two processes may share the work
(e.g. --methods evolution in one, --methods random in the other).

    nice python benchmarks/search_quality.py --data-dir ../shared/data \
        --truth ../shared/benchmarks/nb201_accuracy.csv --seeds 0 1 2 3 4
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

import torch

import search_spaces
from evonas.errors import EvonasError
from evonas.runs import RunRecord
from evonas.searching import resume_search, start_search
from evonas.settings import SearchSettings

PUBLISHED_REA = (93.92, 0.30)  # NAS-Bench-201 paper, REA with real training, CIFAR-10 test
SPACE_OPTIMUM = 94.37  # best cifar10_test in the NAS-Bench-201 table
INTERVAL = (1e-4, 5e-4)
HERE = Path(__file__).resolve().parent


def run_dir_of(method: str, seed: int, args: argparse.Namespace) -> Path:
    tag = "" if args.estimator == "sweet" else f"-{args.estimator}"
    return args.runs_root / f"{method}{tag}-seed{seed}"


def run_one(method: str, seed: int, args: argparse.Namespace) -> None:
    """One search (evolution or random) to its budget; a folder left by an earlier try is resumed."""
    pop, sample = (args.population, args.sample) if method == "evolution" else (args.budget, 1)
    config = SearchSettings(
        space="nb201", estimator=args.estimator, budget=args.budget, population=pop, sample=sample, seed=seed,
        dataset="cifar10", data_dir=str(args.data_dir), interval=INTERVAL, checkpoint_every=25,
    )
    run_dir = run_dir_of(method, seed, args)
    if (run_dir / "config.json").exists():
        resume_search(run_dir)
    else:
        start_search(config, run_dir=run_dir)


def record(method: str, seed: int, args: argparse.Namespace) -> dict | None:
    """The result of a finished run folder (None if absent or unfinished)."""
    run_dir = run_dir_of(method, seed, args)
    if not (run_dir / "config.json").exists():
        return None
    s = RunRecord.open(run_dir).summary(top_k=1)
    if not s["complete"]:
        return None
    search = s["config"]["search"]
    best = s["top"][0]
    space = search_spaces.get("nb201")
    acc = space.benchmark(args.truth).accuracy(best["genotype"], space.truth_column("cifar10"))
    return {
        "method": method, "seed": seed, "budget": s["budget"], "population": search["population"],
        "sample": search["sample"], "evaluations": s["evaluations"], "failed": s["failed"],
        "cache_hit_rate": s["cache_hit_rate"], "wall_s": s["elapsed"], "genotype": best["genotype"],
        "score": best["score"], "true_acc": acc, "run_dir": str(run_dir),
    }


def collect(args: argparse.Namespace) -> list[dict]:
    """Every finished run of the requested methods and seeds, read back from its folder."""
    found = (record(m, seed, args) for m in ("evolution", "random") for seed in args.seeds)
    return [r for r in found if r is not None]


def md_code(text: str) -> str:
    """Inline code inside a markdown table cell (its pipes escaped)."""
    return "`" + text.replace("|", "\\|") + "`"


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} +- {std:.2f}"


def write_results(results: list[dict], args: argparse.Namespace, optimum: float) -> None:
    """search_quality.json (every run) and search_quality.md (the table), rewritten after each run."""
    meta = {
        "space": "nb201", "dataset": "cifar10 (shared data_batch_1)", "estimator": args.estimator,
        "interval": list(INTERVAL), "population": args.population, "sample": args.sample,
        "budget": args.budget, "seeds_requested": args.seeds, "torch_threads": torch.get_num_threads(),
        "published_rea": PUBLISHED_REA, "space_optimum": optimum,
    }
    (args.out.with_suffix(".json")).write_text(json.dumps({"meta": meta, "runs": results}, indent=2) + "\n")
    lines = [
        f"# Search quality: NB-201 / CIFAR-10, {args.estimator}",
        "",
        f"Estimator `{args.estimator}` (Sweetimator interval [{INTERVAL[0]:g}, {INTERVAL[1]:g})), batch 64 (fixed), budget {args.budget} "
        f"evaluations per run. Evolution: P={args.population}, S={args.sample}. Random search: {args.budget} "
        "random cells scored the same way. True accuracy = NAS-Bench-201 200-epoch CIFAR-10 test accuracy "
        "of the returned (best-scored) cell. Produced by `benchmarks/search_quality.py`.",
        "",
        "| method | seeds | true test acc (mean +- std) | wall s/run (mean) | cache hit rate (mean) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for method in ("evolution", "random"):
        rows = [r for r in results if r["method"] == method]
        if rows:
            lines.append(
                f"| {method} ({args.estimator}) | {', '.join(str(r['seed']) for r in rows)} | "
                f"{mean_std([r['true_acc'] for r in rows])} | {statistics.mean(r['wall_s'] for r in rows):.0f} | "
                f"{statistics.mean(r['cache_hit_rate'] for r in rows):.0%} |"
            )
    random_by_seed = {r["seed"]: r["score"] for r in results if r["method"] == "random"}
    pairs = [(r["score"], random_by_seed[r["seed"]]) for r in results
             if r["method"] == "evolution" and r["seed"] in random_by_seed]
    wins, ties = [e > r for e, r in pairs], [e == r for e, r in pairs]
    lines += [
        f"| REA, real training (published) | - | {PUBLISHED_REA[0]:.2f} +- {PUBLISHED_REA[1]:.2f} | - | - |",
        f"| space optimum | - | {optimum:.2f} | - | - |",
        "",
        "| method | seed | true acc | score | evaluations | failed | cache hits | wall s | genotype |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['method']} | {r['seed']} | {r['true_acc']:.2f} | {r['score']:.6g} | {r['evaluations']} | "
            f"{r['failed']} | {r['cache_hit_rate']:.0%} | {r['wall_s']:.0f} | {md_code(r['genotype'])} |"
        )
    if wins:
        lines += ["", f"Evolution's best-scored cell scored higher than random search's on {sum(wins)} of {len(wins)} "
                  f"seeds ({sum(ties)} tied)."]
    if args.note:
        lines += ["", args.note]
    (args.out.with_suffix(".md")).write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=["evolution", "random"], choices=["evolution", "random"])
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--estimator", default="sweet", help="estimator or composite (run folders and --out name it)")
    parser.add_argument("--population", type=int, default=25)
    parser.add_argument("--sample", type=int, default=5)
    parser.add_argument("--runs-root", type=Path, default=Path("runs/search_quality"))
    parser.add_argument("--out", type=Path, default=HERE / "search_quality")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the results from the run folders")
    parser.add_argument("--note", default="", help="a sentence on the machine and circumstances, added to the .md")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per run: the numbers are per-core and the machine is shared
    with args.truth.open(newline="") as fh:
        optimum = max(float(row["cifar10_test"]) for row in csv.DictReader(fh))
    if abs(optimum - SPACE_OPTIMUM) > 0.005:
        raise EvonasError(f"{args.truth}: best cifar10_test is {optimum}, expected {SPACE_OPTIMUM}")
    for method in [] if args.report_only else args.methods:  # every evolution seed first: the headline
        for seed in args.seeds:
            run_one(method, seed, args)
            write_results(collect(args), args, optimum)  # a partial benchmark still reports what it did
            r = record(method, seed, args)
            print(f"{method} seed {seed}: true acc {r['true_acc']:.2f}, score {r['score']:.0f}, "
                  f"cache hits {r['cache_hit_rate']:.0%}, {r['wall_s']:.0f} s", flush=True)
    write_results(collect(args), args, optimum)

if __name__ == "__main__":
    main()
