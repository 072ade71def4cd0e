"""Hardware-aware search on NAS-Bench-201 / CIFAR-10: the true params/accuracy trade-off, and what
NSGA-II (Sweetimator + params), random search and constrained aging evolution return
(``benchmarks/multiobjective.md`` / ``.json``).

1. The true trade-off over all 15,625 cells, with evonas's ``params`` cost. A cell's parameters are
   the fixed part plus one term per non-``none`` edge (every such edge has its module, as in the
   benchmark's networks), so 1 + 6 x 4 network counts give all cells exactly; 50 random cells are
   checked against the direct count.
2. Searches scored by the real Sweetimator (interval [1e-4, 5e-4), batch 64, fixed batch, shared
   CIFAR-10 subset). Scores are computed once per canonical key with scoring seed 0 and shared by
   every run and seed (``<work>/scores.jsonl``), so seeds differ in the search's draws only.
   Runs are resumable: finished run folders are reused.

    nice .venv/bin/python benchmarks/multiobjective.py --seeds 3 --evaluations 150
    .venv/bin/python benchmarks/multiobjective.py --seeds 3 --evaluations 150 --report   # markdown only

Data: NAS-Bench-201 / NATS-Bench topology accuracies (Dong et al.), CIFAR-10 (Krizhevsky, 2009).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import search_spaces
from evonas.costs import CostModel
from evonas.execution import LocalExecutor
from evonas.runs import RunRecord, Tally
from evonas.scoring import Scorer, resolve_scoring
from evonas.searching import start_search
from evonas.searching.pareto import hypervolume
from evonas.seeding import stable_seed
from evonas.settings import SearchSettings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = Path(os.environ.get("EVONAS_SHARED", ROOT.parent / "shared"))
BUDGETS = (0.2, 0.4, 0.6, 0.8, 1.0, 1.6)
ISSUE = {0.2: 91.32, 0.4: 93.60, 0.6: 94.02, 0.8: 94.31, 1.0: 94.34, 1.6: 94.37}
INTERVAL = (1e-4, 5e-4)
#: Hypervolume reference in (test error %, params M): cells worse than 85% accuracy or over 1.6M add nothing.
HV_REF = (15.0, 1.6)
EDGES = 6


def true_params(space) -> dict[str, float]:
    """Parameters (M) of every NB-201 cell from the per-edge decomposition, checked on 50 cells."""
    model = CostModel("nb201", "cifar10", ("params",))
    count = lambda g: model(g, g)["params"]  # noqa: E731  (keyed by genotype: isomorphic cells differ)
    empty = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    base = count(empty)
    delta: dict[tuple[int, str], float] = {}
    for edge in range(EDGES):
        for op in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"):
            ops = ["none"] * EDGES
            ops[edge] = op
            delta[edge, op] = count(_cell(ops)) - base
    cells = space.benchmark_order()
    params = {g: base + sum(delta.get((e, op), 0.0) for e, op in enumerate(_ops(g))) for g in cells}
    for g in random.Random(0).sample(cells, 50):
        assert abs(params[g] - count(g)) < 1e-6, g
    return params


def _ops(genotype: str) -> list[str]:
    return [entry.split("~")[0] for entry in genotype.strip("|").replace("|+|", "|").split("|")]


def _cell(ops: list[str]) -> str:
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


def pareto(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Non-dominated (params low, accuracy high) points, by params."""
    front, best = [], -1.0
    for params, acc, g in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((params, acc, g))
            best = acc
    return front


def hv(front: list[tuple[float, float, str]]) -> float:
    return hypervolume([(100.0 - acc, params) for params, acc, _ in front], HV_REF)


class SharedScores:
    """Real Sweetimator scores, one per canonical key, kept in a JSON-lines file for every run."""

    def __init__(self, path: Path, data_dir: str) -> None:
        self.path = path
        self.scores: dict[str, float] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                rec = json.loads(line)
                self.scores[rec["key"]] = rec["score"]
        self.config = resolve_scoring("nb201", "sweet", data_dir=data_dir, seed=0, interval=INTERVAL)
        self._scorer: Scorer | None = None
        self.space = search_spaces.get("nb201")
        self.computed = 0

    def score(self, genotype: str) -> float:
        key = self.space.str_key(genotype)
        if key not in self.scores:
            self._scorer = self._scorer or Scorer(self.config)
            result = self._scorer.score(genotype)
            self.scores[key] = result.score
            self.computed += 1
            with open(self.path, "a") as fh:
                fh.write(json.dumps({"key": key, "score": result.score}) + "\n")
        return self.scores[key]

    def scorer_factory(self, config, device: str = "cpu") -> Any:
        """A drop-in for ``Scorer`` in ``LocalExecutor``: answers from the shared scores."""
        shared = self

        class _Scorer:
            def score(self, genotype: str, eval_id: int = 0):
                from estimators.base import EstimatorResult

                start = time.perf_counter()
                value = shared.score(genotype)
                return EstimatorResult(value, time.perf_counter() - start, extra={"key": shared.space.str_key(genotype)})

        return _Scorer()


def regret(front_cells: list[str], params: dict, acc: dict, best: dict) -> dict[str, float | None]:
    out = {}
    for b in BUDGETS:
        under = [acc[g] for g in front_cells if params[g] <= b + 1e-9]
        out[str(b)] = best[b] - max(under) if under else None
    return out


def run_search(settings: SearchSettings, run_dir: Path, shared: SharedScores) -> Path:
    if (run_dir / "best.json").exists() and json.loads((run_dir / "best.json").read_text()).get("complete"):
        return run_dir
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)  # an unfinished benchmark run restarts (its scores are kept in the shared file)
    return start_search(settings, run_dir=run_dir,
                        executor_factory=lambda scoring, cfg: LocalExecutor(scoring, scorer_factory=shared.scorer_factory))


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _fmt(values: list[float | None]) -> tuple[str, str]:
    """(mean, worst) of regrets; a seed whose front has no cell under the budget counts as missing."""
    known = [v for v in values if v is not None]
    missing = len(values) - len(known)
    note = f" ({missing} missing)" if missing else ""
    if not known:
        return "-" + note, "-"
    return f"{sum(known) / len(known):.2f}{note}", f"{max(known):.2f}"


def write_report(result: dict[str, Any], args: argparse.Namespace) -> None:
    """``multiobjective.md`` from the results (rerun-safe: everything in it comes from here)."""
    seeds = sorted(result["runs"])
    lines = [
        "# Hardware-aware search on NAS-Bench-201 (CIFAR-10 truth)", "",
        f"`python benchmarks/multiobjective.py --seeds {args.seeds} --evaluations {args.evaluations} "
        f"--constrained-evaluations {args.constrained_evaluations}"
        f"{' --latency-run' if result.get('latency') else ''}` "
        f"({result['date']}; 2-core machine shared with other jobs).", "",
        "## True trade-off (all 15,625 cells, evonas `params`)", "",
        "| params budget | best true accuracy (evonas params) | issue's number |", "| --- | --- | --- |",
    ]
    for b in BUDGETS:
        lines.append(f"| {b}M | {result['true_best_under'][str(b)]:.3f} | {ISSUE[b]:.2f} |")
    lo, hi = result["params_range"]
    lines += ["", f"Parameters range from {lo:.3f}M to {hi:.3f}M. The true front has {len(result['true_front'])} "
              f"cells; its hypervolume in (test error %, params M) against the reference point {tuple(HV_REF)} "
              f"is {result['true_front_hv']:.4f}.", ""]
    if seeds:
        lines += [
            f"## Searches: {len(seeds)} seeds x {args.evaluations} evaluations (P={args.population}, S={args.sample})", "",
            "Sweetimator scores (interval [1e-4, 5e-4), batch 64, fixed batch, scoring seed 0, shared CIFAR-10 "
            "subset) were computed once per canonical key and shared by all runs; the seeds differ in the searches' "
            "draws. Random search: as many random cells, scored the same way, and the front of (score, params) "
            "among them. Regret at a budget = best true accuracy under it minus the best true accuracy among the "
            "returned front's cells under it.", "",
            "| budget | NSGA-II regret mean | NSGA-II worst | random regret mean | random worst |",
            "| --- | --- | --- | --- | --- |",
        ]
        for b in BUDGETS:
            n = _fmt([result["runs"][s]["nsga2"]["regret"][str(b)] for s in seeds])
            r = _fmt([result["runs"][s]["random"]["regret"][str(b)] for s in seeds])
            lines.append(f"| {b}M | {n[0]} | {n[1]} | {r[0]} | {r[1]} |")
        hv_n = [result["runs"][s]["nsga2"]["hv"] / result["true_front_hv"] for s in seeds]
        hv_r = [result["runs"][s]["random"]["hv"] / result["true_front_hv"] for s in seeds]
        lines += ["", f"Hypervolume of the returned front's true (error, params), as a fraction of the true front's "
                  f"(reference {tuple(HV_REF)}): NSGA-II mean {sum(hv_n) / len(hv_n):.3f} "
                  f"({', '.join(f'{v:.3f}' for v in hv_n)}), random mean {sum(hv_r) / len(hv_r):.3f} "
                  f"({', '.join(f'{v:.3f}' for v in hv_r)}).", "",
                  "Front sizes (NSGA-II / random): " + ", ".join(
                      f"{len(result['runs'][s]['nsga2']['front'])}/{len(result['runs'][s]['random']['front'])}"
                      for s in seeds) + ".", "",
                  f"## Constrained aging evolution, `--max-params 0.6M`, {args.constrained_evaluations} evaluations", "",
                  "| seed | true accuracy of the returned cell | its params | infeasible children |",
                  "| --- | --- | --- | --- |"]
        for s in seeds:
            c = result["runs"][s]["constrained"]
            lines.append(f"| {s} | {c['acc']:.2f} | {c['params']:.3f}M | {c['infeasible']} |")
        lines += ["", f"The best feasible cell has {result['true_best_under']['0.6']:.2f}.", "",
                  "## Against the issue's targets", ""]
        orc = result.get("oracle")
        if orc:
            lines += ["What Sweetimator itself allows (every one of the 15,625 cells scored, one score per "
                      "canonical key): the (score, params) front of all cells has "
                      f"{orc['front_size']} cells, regret " + ", ".join(
                          f"{b}M {orc['front_regret'][str(b)]:.2f}" for b in BUDGETS if orc['front_regret'][str(b)] is not None)
                      + f", hypervolume {orc['front_hv'] / result['true_front_hv']:.3f} of the true front's; the "
                      f"best-scored cell under 0.6M has {orc['best_scored_under_0.6']['acc']:.2f} "
                      f"({orc['best_scored_under_0.6']['params']:.3f}M). A search that found the estimator's exact "
                      "optimum would return these; the gap to the targets below that is the estimator's, not "
                      "the search's.", ""]
        mean_regret = {b: [result["runs"][s]["nsga2"]["regret"][str(b)] for s in seeds] for b in BUDGETS}
        met = [b for b in BUDGETS if all(v is not None for v in mean_regret[b])
               and sum(mean_regret[b]) / len(seeds) <= 0.3]
        beats = [b for b in BUDGETS if _mean(mean_regret[b]) is not None and _mean(
            [result["runs"][s]["random"]["regret"][str(b)] for s in seeds]) is not None and _mean(mean_regret[b])
            < _mean([result["runs"][s]["random"]["regret"][str(b)] for s in seeds])]
        constrained = [result["runs"][s]["constrained"]["acc"] for s in seeds]
        lines += [f"- Mean regret <= 0.3 points: met at {', '.join(f'{b}M' for b in met) or 'no budget'} "
                  f"of {len(BUDGETS)}; NSGA-II better than random search at {len(beats)} of {len(BUDGETS)} budgets.",
                  f"- Hypervolume >= 0.98 of the true front's: NSGA-II mean {sum(hv_n) / len(hv_n):.3f}.",
                  f"- Constrained (0.6M) >= 93.9 on every seed: {sum(a >= 93.9 for a in constrained)} of "
                  f"{len(seeds)} seeds (min {min(constrained):.2f}, max {max(constrained):.2f}).",
                  "- The trade-off check agrees with the issue's numbers to rounding (91.315 prints as 91.32)."]
    lat = result.get("latency")
    if lat:
        lines += ["", f"## With predicted CPU latency instead of params (seed 0, {args.evaluations} evaluations)", "",
                  f"Lookup table: CPU, batch 1, one thread, minimum of 25 repeats; fixed part {lat['fixed_ms']:.2f} ms. "
                  f"NSGA-II over (sweet, latency) returned this front (true accuracies from the table):", "",
                  "| predicted latency | params | true accuracy |", "| --- | --- | --- |"]
        lines += [f"| {c['latency_ms']:.2f} ms | {c['params']:.3f}M | {c['acc']:.2f} |" for c in lat["front"]]
        if any(c["acc"] < 20 for c in lat["front"]):
            lines += ["", "A front keeps the cheapest cell whatever its score, so a cell whose every path is dead "
                      "(constant output, 10% accuracy) can head it."]
        c = lat["constrained"]
        lines += ["", f"Constrained aging evolution with `--max-latency {lat['bound_ms']}ms` (the prediction for the true "
                  f"best cell under 0.6M, {result['true_best_under']['0.6']:.2f}) returned a cell of {c['acc']:.2f} "
                  f"at {c['latency_ms']:.2f} ms."]
    (HERE / "multiobjective.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--evaluations", type=int, default=1000, help="per NSGA-II and random-search run")
    parser.add_argument("--constrained-evaluations", type=int, default=500, help="per constrained aging run")
    parser.add_argument("--population", type=int, default=25)
    parser.add_argument("--sample", type=int, default=5)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "multiobjective-benchmark")
    parser.add_argument("--skip-searches", action="store_true", help="only the true trade-off")
    parser.add_argument("--report", action="store_true", help="only rewrite the markdown from multiobjective.json")
    parser.add_argument("--latency-run", action="store_true", help="also seed 0 with predicted CPU latency")
    parser.add_argument("--precompute", metavar="K/N", help="only score shard K of N of every canonical class, then stop")
    args = parser.parse_args()
    if args.report:
        write_report(json.loads((HERE / "multiobjective.json").read_text()), args)
        return
    import torch

    torch.set_num_threads(1)
    space = search_spaces.get("nb201")
    truth = space.benchmark(SHARED / "benchmarks" / "nb201_accuracy.csv")
    params = true_params(space)
    acc = {g: truth.accuracy(g, "cifar10_test") for g in params}
    best = {b: max(a for g, a in acc.items() if params[g] <= b + 1e-9) for b in BUDGETS}
    true_front = pareto([(params[g], acc[g], g) for g in params])
    if args.precompute:
        precompute(args, space, list(params))
        return
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "true_best_under": {str(b): best[b] for b in BUDGETS}, "issue_best_under": {str(b): ISSUE[b] for b in BUDGETS},
        "params_range": [min(params.values()), max(params.values())],
        "true_front": [{"params": p, "acc": a, "genotype": g} for p, a, g in true_front],
        "hv_ref": HV_REF, "true_front_hv": hv(true_front), "runs": {},
    }
    print("best true accuracy under budget:", {b: round(best[b], 2) for b in BUDGETS}, flush=True)
    if not args.skip_searches:
        args.work.mkdir(parents=True, exist_ok=True)
        shared = SharedScores(args.work / "scores.jsonl", str(SHARED / "data"))
        result["scores_computed"] = len(shared.scores)
        if all(space.str_key(g) in shared.scores for g in params):
            result["oracle"] = oracle(space, shared, params, acc, best)
        common = dict(space="nb201", budget=args.evaluations, population=args.population, sample=args.sample,
                      interval=INTERVAL, data_dir=str(SHARED / "data"), checkpoint_every=50)
        for seed in range(args.seeds):
            runs = result["runs"].setdefault(str(seed), {})
            t0 = time.perf_counter()
            run = run_search(SearchSettings(**common, seed=seed, objectives=("sweet", "params")),
                             args.work / f"nsga2-s{seed}", shared)
            front = [c["genotype"] for c in RunRecord.open(run).tally().front()]
            runs["nsga2"] = {"front": front, "regret": regret(front, params, acc, best),
                             "hv": hv(pareto([(params[g], acc[g], g) for g in front])), "seconds": time.perf_counter() - t0}
            rng = random.Random(stable_seed("random-search", seed))
            tally = Tally(True, ("params",))
            for i in range(args.evaluations):
                g = space.to_str(space.sample(rng))
                tally.add({"id": i, "genotype": g, "key": space.str_key(g), "score": shared.score(g), "status": "ok",
                           "costs": {"params": params[g]}})
            rfront = [c["genotype"] for c in tally.front()]
            runs["random"] = {"front": rfront, "regret": regret(rfront, params, acc, best),
                              "hv": hv(pareto([(params[g], acc[g], g) for g in rfront]))}
            run = run_search(SearchSettings(**{**common, "budget": args.constrained_evaluations}, seed=seed,
                                            estimator="sweet", constraints={"params": 0.6}),
                             args.work / f"aging-max0.6M-s{seed}", shared)
            top = RunRecord.open(run).tally().top(1)[0]
            runs["constrained"] = {"genotype": top["genotype"], "params": params[top["genotype"]],
                                   "acc": acc[top["genotype"]], "infeasible": RunRecord.open(run).tally().infeasible}
            print(f"seed {seed}: nsga2 regret {runs['nsga2']['regret']}, random {runs['random']['regret']}, "
                  f"constrained acc {runs['constrained']['acc']:.2f}; {shared.computed} scores computed so far", flush=True)
            (HERE / "multiobjective.json").write_text(json.dumps(result, indent=1) + "\n")
    if args.latency_run:
        result["latency"] = latency_runs(args, params, acc, best, true_front)
    (HERE / "multiobjective.json").write_text(json.dumps(result, indent=1) + "\n")
    write_report(result, args)


def oracle(space, shared: "SharedScores", params: dict, acc: dict, best: dict) -> dict[str, Any]:
    """What the estimator itself allows, with every cell scored: the regret of the (score, params) front
    of all 15,625 cells, and the true accuracy of the best-scored cell under 0.6M parameters."""
    score = {g: shared.scores[space.str_key(g)] for g in params}
    tally = Tally(True, ("params",))
    for i, g in enumerate(params):
        tally.add({"id": i, "genotype": g, "key": space.str_key(g), "score": score[g], "status": "ok",
                   "costs": {"params": params[g]}})
    front = [c["genotype"] for c in tally.front()]
    top = max((g for g in params if params[g] <= 0.6 + 1e-9), key=lambda g: score[g])
    return {"front_regret": regret(front, params, acc, best), "front_size": len(front),
            "front_hv": hv(pareto([(params[g], acc[g], g) for g in front])),
            "best_scored_under_0.6": {"genotype": top, "acc": acc[top], "params": params[top]}}


def precompute(args: argparse.Namespace, space, genotypes: list[str]) -> None:
    """Score one representative of every canonical class (shard K of N), so the searches only read scores.

    The representative is the first member in a seeded shuffle of all cells; shards split the classes,
    so several processes can fill the shared file at once (each line is one small append).
    """
    shard, shards = (int(x) for x in args.precompute.split("/"))
    random.Random(0).shuffle(genotypes)
    firsts: dict[str, str] = {}
    for g in genotypes:
        firsts.setdefault(space.str_key(g), g)
    mine = [g for i, g in enumerate(firsts.values()) if i % shards == shard]
    args.work.mkdir(parents=True, exist_ok=True)
    shared = SharedScores(args.work / "scores.jsonl", str(SHARED / "data"))
    todo = [g for g in mine if space.str_key(g) not in shared.scores]
    print(f"{len(firsts)} classes; shard {shard}/{shards}: {len(mine)}, {len(todo)} to score", flush=True)
    t0 = time.perf_counter()
    for i, g in enumerate(todo, 1):
        shared.score(g)
        if i % 50 == 0:
            print(f"{i}/{len(todo)} scored, {(time.perf_counter() - t0) / i:.2f} s per cell", flush=True)


def latency_runs(args: argparse.Namespace, params: dict, acc: dict, best: dict, true_front: list) -> dict[str, Any]:
    """Seed 0 with predicted CPU latency instead of params: NSGA-II (sweet, latency) and constrained aging.

    The latency bound is the table's prediction for the true best cell under 0.6M parameters, so the
    constrained search has a known good cell inside its region.
    """
    from evonas.costs import LatencySettings, latency_table

    os.environ["EVONAS_CACHE"] = str(args.work / "cache")
    table = latency_table(LatencySettings("nb201", statistic="min"))[0]
    target = max((g for g in params if params[g] <= 0.6 + 1e-9), key=lambda g: acc[g])
    bound = round(table.predict(target), 3)
    shared = SharedScores(args.work / "scores.jsonl", str(SHARED / "data"))
    common = dict(space="nb201", budget=args.evaluations, population=args.population, sample=args.sample,
                  interval=INTERVAL, data_dir=str(SHARED / "data"), checkpoint_every=50, seed=0, latency_statistic="min")
    run = run_search(SearchSettings(**common, objectives=("sweet", "latency")), args.work / "nsga2-latency-s0", shared)
    front = RunRecord.open(run).tally().front()
    constrained = run_search(SearchSettings(**common, estimator="sweet", constraints={"latency": bound}),
                             args.work / "aging-maxlatency-s0", shared)
    top = RunRecord.open(constrained).tally().top(1)[0]
    return {"fixed_ms": table.fixed_ms, "bound_ms": bound, "bound_from": target,
            "front": [{"genotype": c["genotype"], "latency_ms": c["costs"]["latency"], "params": params[c["genotype"]],
                       "acc": acc[c["genotype"]]} for c in front],
            "constrained": {"genotype": top["genotype"], "latency_ms": top["costs"]["latency"], "acc": acc[top["genotype"]]}}


if __name__ == "__main__":
    main()
