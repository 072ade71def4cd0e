"""Driver throughput: evaluations per second the search loop sustains when scoring costs nothing.

The real driver (``start_search``: aging evolution, score cache, durable history.jsonl,
TensorBoard, checkpoints) runs against a scorer that answers at once, so every second
measured is the driver's own. Modes:

- in-process, history group-committed (one fsync per 0.2 s) and, for comparison, fsync'ed per line;
- Ray with many light actors (``--actors`` actors x ``--jobs-per-actor`` jobs in flight), one job
  per actor call and ``--jobs-per-call`` jobs per call;
- Ray's per-evaluation overhead at 1 worker with a scorer that sleeps ``--job-ms`` (a GPU-sized
  evaluation), 1 and 2 jobs in flight per actor, measured in the steady state: from the first
  scored result to the last (Ray's start and the actor's start-up are not per-evaluation costs).

The in-process runs are profiled (cProfile on CPU time, robust to other users' load) and their
time split into the driver's parts. Writes ``benchmarks/driver.json`` and prints a summary
(``benchmarks/cluster.md`` quotes it).

    nice .venv/bin/python benchmarks/driver.py --space nb201 --budget 3000
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import pstats
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import ray

from estimators.base import EstimatorResult
from evonas import runs
from evonas.execution import LocalExecutor, RayExecutor, RaySession
from evonas.searching import start_search
from evonas.settings import ScoringSettings, SearchSettings

ROOT = Path(__file__).resolve().parents[1]
#: The driver's parts, as (label, file suffix, function names) found in the profile.
PARTS = (
    ("proposal (mutation, canonical key)", "searching/evolution.py", ("propose",)),
    ("DEAP bookkeeping (tell: population, statistics, logbook)", "searching/evolution.py", ("tell",)),
    ("score cache", "searching/cache.py", ("get", "put")),
    ("history write (append)", "evonas/runs.py", ("append_history",)),
    ("run counters (Tally)", "evonas/runs.py", ("add",)),
    ("TensorBoard per-evaluation scalars", "searching/board.py", ("step",)),
    ("TensorBoard best-genotype text", "searching/board.py", ("best",)),
    ("checkpoint (sync, state, histogram, best.json)", "searching/driver.py", ("checkpoint",)),
    ("executor (submit + wait, incl. the instant scorer)", "execution/local.py", ("submit", "wait")),
)


class InstantScorer:
    """Answers at once: more 3x3 convolutions score higher, a hash of the string breaks ties."""

    def __init__(self, config: ScoringSettings, device: str = "cpu", sleep_s: float = 0.0) -> None:
        self.sleep_s = sleep_s

    def score(self, genotype: str, eval_id: int = 0) -> EstimatorResult:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return EstimatorResult(genotype.count("conv_3x3") + zlib.crc32(genotype.encode()) / 2**32, 0.0,
                               extra={"key": None})


def settings(space: str, budget: int) -> SearchSettings:
    return SearchSettings(space=space, estimator="params", dataset="synthetic", budget=budget, seed=0)


def run_dir_stats(run: Path, evaluations: int) -> dict[str, Any]:
    """Bytes the run leaves per evaluation: history line, TensorBoard events, the final checkpoint."""
    tb = sum(p.stat().st_size for p in (run / "tb").rglob("*") if p.is_file())
    return {
        "history_bytes_per_eval": (run / "history.jsonl").stat().st_size / evaluations,
        "tb_bytes_per_eval": tb / evaluations,
        "checkpoint_bytes": (run / "checkpoint.json").stat().st_size,
    }


def timed_search(cfg: SearchSettings, root: Path, name: str, factory) -> dict[str, Any]:
    began, cpu = time.perf_counter(), time.process_time()
    run = start_search(cfg, run_dir=root / name, executor_factory=factory)
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    hits = sum(r["cache_hit"] for r in history)
    return {"mode": name, "evaluations": len(history), "wall_s": wall, "evals_per_s": len(history) / wall,
            "driver_cpu_s": cpu, "evals_per_driver_cpu_s": len(history) / cpu,
            "cache_hit_rate": hits / len(history), "distinct_workers": len({r["worker"] for r in history}),
            **run_dir_stats(run, len(history))}


def profile_parts(cfg: SearchSettings, root: Path, name: str) -> dict[str, Any]:
    """An in-process run under cProfile (CPU time): inclusive seconds per part of the driver."""
    profiler = cProfile.Profile(time.process_time)
    began = time.perf_counter()
    profiler.enable()
    start_search(cfg, run_dir=root / name, executor_factory=lambda s, c: LocalExecutor(s, InstantScorer))
    profiler.disable()
    wall = time.perf_counter() - began
    stats = pstats.Stats(profiler).stats  # (file, line, function) -> (calls, primitive, own, cumulative, callers)
    parts, calls = {}, {}
    for label, suffix, names in PARTS:
        hits = [(v[1], v[3]) for (file, _, func), v in stats.items() if file.endswith(suffix) and func in names]
        parts[label] = sum(c for _, c in hits)
        calls[label] = sum(n for n, _ in hits)
    total = next(v[3] for (file, _, func), v in stats.items() if file.endswith("searching/driver.py") and func == "run")
    return {"wall_s_profiled": wall, "driver_run_s": total, "seconds": parts, "calls": calls,
            "other_s": total - sum(parts.values()), "per_eval_us": {k: v / cfg.budget * 1e6 for k, v in parts.items()}}


def ray_overhead(space: str, budget: int, job_ms: float, depth: int, root: Path) -> dict[str, Any]:
    """Steady-state time per scored evaluation at 1 actor against the scorer's own time.

    From the first scored result to the last, the actor should be busy all the time: every
    millisecond beyond ``job_ms`` per evaluation is Ray's round trip plus the driver's own work
    that the jobs in flight did not hide.
    """
    name = f"ray, 1 actor, {depth} in flight, {job_ms:g} ms jobs"
    factory = (lambda s, c: RayExecutor(s, workers=1, calls_per_actor=depth,
                                        scorer_factory=lambda cfg, device: InstantScorer(cfg, device, job_ms / 1e3)))
    row = timed_search(settings(space, budget), root, name, factory)
    history = [json.loads(line) for line in (root / name / "history.jsonl").read_text().splitlines()]
    times = sorted(r["t"] for r in history if not r["cache_hit"])
    per_eval = (times[-1] - times[0]) / (len(times) - 1)
    row.update(overhead=per_eval / (job_ms / 1e3) - 1, steady_ms_per_eval=per_eval * 1e3, scored=len(times),
               calls_per_actor=depth, job_ms=job_ms)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nb201", help="nb201 or darts (bigger cells: a costlier proposal)")
    parser.add_argument("--budget", type=int, default=3000, help="evaluations per in-process / Ray run")
    parser.add_argument("--actors", type=int, default=8, help="light Ray actors (one CPU each)")
    parser.add_argument("--jobs-per-actor", type=int, default=8, help="jobs in flight per actor")
    parser.add_argument("--jobs-per-call", type=int, default=4, help="jobs per actor call in the batched run")
    parser.add_argument("--job-ms", type=float, default=20.0, help="scorer time for the 1-worker overhead runs")
    parser.add_argument("--overhead-budget", type=int, default=600)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "driver.json")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    profiles: dict[str, Any] = {}
    local = lambda s, c: LocalExecutor(s, InstantScorer)
    with tempfile.TemporaryDirectory(prefix="evonas-driver-") as tmp:
        root = Path(tmp)
        rows.append(timed_search(settings(args.space, args.budget), root, "in-process, group commit", local))
        interval, runs.SYNC_INTERVAL_S = runs.SYNC_INTERVAL_S, 0.0
        try:
            rows.append(timed_search(settings(args.space, args.budget // 4), root, "in-process, fsync per line", local))
        finally:
            runs.SYNC_INTERVAL_S = interval
        profiles["as shipped"] = profile_parts(settings(args.space, args.budget), root, "profiled")
        session = RaySession(num_cpus=args.actors)
        try:
            simulated = args.actors * args.jobs_per_actor
            for per_call in (1, args.jobs_per_call):
                many = (lambda s, c, n=per_call: RayExecutor(
                    s, workers=args.actors, calls_per_actor=args.jobs_per_actor // n, jobs_per_call=n,
                    scorer_factory=InstantScorer))
                rows.append(timed_search(settings(args.space, args.budget), root,
                                         f"ray, {args.actors} actors x {args.jobs_per_actor} in flight "
                                         f"({simulated} simulated), {per_call} job(s) per call", many))
            for depth in (1, 2):
                rows.append(ray_overhead(args.space, args.overhead_budget, args.job_ms, depth, root))
        finally:
            session.close()
    meta = {"space": args.space, "budget": args.budget, "cpus": os.cpu_count(), "load_1min": os.getloadavg()[0],
            "python": sys.version.split()[0], "ray": ray.__version__,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["nice .venv/bin/python benchmarks/driver.py", *sys.argv[1:]])}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows, "profiles": profiles}, indent=2) + "\n")
    print(f"{meta['date']}, load {meta['load_1min']:.1f} on {meta['cpus']} CPUs")
    for row in rows:
        extra = f", overhead {row['overhead']:+.1%}" if "overhead" in row else ""
        print(f"{row['mode']}: {row['evals_per_s']:.0f} eval/s wall, {row['evals_per_driver_cpu_s']:.0f} per driver "
              f"CPU-s ({row['evaluations']} in {row['wall_s']:.1f} s, cache hits {row['cache_hit_rate']:.0%}{extra}); "
              f"history {row['history_bytes_per_eval']:.0f} B/eval, TB {row['tb_bytes_per_eval']:.0f} B/eval, "
              f"checkpoint {row['checkpoint_bytes'] / 1e3:.0f} kB")
    for name, profile in profiles.items():
        print(f"profile, {name}: driver {profile['driver_run_s']:.2f} CPU-s for {args.budget} evaluations (profiled)")
        for label, us in sorted(profile["per_eval_us"].items(), key=lambda kv: -kv[1]):
            print(f"  {us:8.1f} us/eval  {label}")
        print(f"  {profile['other_s'] / args.budget * 1e6:8.1f} us/eval  other (loop, JSON of history lines)")


if __name__ == "__main__":
    main()
