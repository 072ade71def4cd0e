"""Driver throughput: evaluations per second ``start_search`` sustains when scoring costs nothing.

A stub scorer answers at once (or after ``--job-ms``), so every second measured is the driver's
own: proposal, score cache, durable history, TensorBoard, checkpoints, the executor. Rows go to
``--out`` (``benchmarks/driver.json`` holds the last full run; ``benchmarks/cluster.md`` quotes it).
For the split of the driver's time into its parts, profile a run:
``python -m cProfile -s cumtime benchmarks/driver.py --budget 3000 --actors 0``.

    nice .venv/bin/python benchmarks/driver.py --space nb201 --budget 3000 --out benchmarks/driver.json
"""
import argparse, json, os, sys, tempfile, time, zlib
from functools import partial

from estimators.base import EstimatorResult
from evonas import runs
from evonas.api import Run
from evonas.execution import LocalExecutor, RayExecutor, RaySession
from evonas.searching import start_search
from evonas.settings import SearchSettings


class Stub:
    """Not a proxy: a score that costs nothing (a hash of the string), after ``sleep_s``."""
    def __init__(self, config, device="cpu", sleep_s=0.0): self.sleep_s = sleep_s
    def score(self, genotype, eval_id=0):
        time.sleep(self.sleep_s)
        return EstimatorResult(zlib.crc32(genotype.encode()) / 2**32, 0.0, extra={"key": None})


def timed(args, root, mode, budget, executor):
    cpu = time.process_time()
    run = Run.load(start_search(SearchSettings(space=args.space, estimator="params", dataset="synthetic", budget=budget),
                                run_dir=f"{root}/{len(os.listdir(root))}", executor_factory=executor))
    scored = sorted(r["t"] for r in run.history if not r["cache_hit"])
    summary = run.summary()
    row = {"mode": mode, **{k: summary[k] for k in ("evaluations", "elapsed", "rate", "cache_hit_rate")},
           "driver_cpu_s": time.process_time() - cpu, "steady_ms_per_scored": 1e3 * (scored[-1] - scored[0]) / (len(scored) - 1)}
    print(json.dumps(row))
    return row


p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
for flag, default in (("--space", "nb201"), ("--budget", 3000), ("--actors", 8), ("--jobs-per-actor", 8),
                      ("--jobs-per-call", 4), ("--job-ms", 20.0), ("--overhead-budget", 600), ("--out", "runs/driver.json")):
    p.add_argument(flag, type=type(default), default=default)
args = p.parse_args()
with tempfile.TemporaryDirectory() as root:
    rows = [timed(args, root, "in-process, group commit", args.budget, lambda s, c: LocalExecutor(s, Stub))]
    runs.SYNC_INTERVAL_S = 0.0  # every history line fsync'ed on its own, for comparison
    rows.append(timed(args, root, "in-process, fsync per line", args.budget // 4, lambda s, c: LocalExecutor(s, Stub)))
    runs.SYNC_INTERVAL_S = 0.2
    if args.actors:
        session = RaySession(num_cpus=args.actors)
        for n in (1, args.jobs_per_call):
            rows.append(timed(args, root, f"ray, {args.actors} actors x {args.jobs_per_actor} in flight, {n} job(s) per call",
                              args.budget, lambda s, c, n=n: RayExecutor(s, workers=args.actors, jobs_per_call=n,
                                                                         calls_per_actor=args.jobs_per_actor // n, scorer_factory=Stub)))
        for depth in (1, 2):  # overhead = steady_ms_per_scored / job_ms - 1
            rows.append(timed(args, root, f"ray, 1 actor, {depth} in flight, {args.job_ms:g} ms jobs", args.overhead_budget,
                              lambda s, c, d=depth: RayExecutor(s, workers=1, calls_per_actor=d,
                                                                scorer_factory=partial(Stub, sleep_s=args.job_ms / 1e3))))
        session.close()
meta = {"command": " ".join(["python benchmarks/driver.py", *sys.argv[1:]]), "load_1min": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
open(args.out, "w").write(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
