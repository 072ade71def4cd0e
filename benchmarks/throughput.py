"""Executor throughput: the same NB-201 cells scored in process, on 1 and on 2 Ray workers.

Each mode scores one fixed, seeded list of NB-201 genotypes with Sweetimator (interval
[1e-4, 5e-4)) on CIFAR-10, the way the search drives an executor: one job in flight per
worker, the next submitted as soon as any result returns. Start-up (Ray, data loading) and a
short warm-up are excluded; the modes take turns on chunks of the list so that load from
other users of a shared machine falls on all of them alike. Writes ``benchmarks/throughput.md``
and ``.json``: evaluations per second, the ratios (target: 2 workers >= 1.6x one worker) and
Ray's per-evaluation overhead (wall time per evaluation and worker against the scoring time
measured inside the worker; target <= 10%).

    nice .venv/bin/python benchmarks/throughput.py --data-dir ../shared/data --n 80
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

import torch

import search_spaces
from evonas.execution import Executor, JobResult, RaySession, make_executor
from evonas.settings import ScoringSettings

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = (1e-4, 5e-4)
TARGET_SPEEDUP = 1.6
TARGET_OVERHEAD = 0.10


def genotypes(n: int, seed: int) -> list[str]:
    space = search_spaces.get("nb201")
    rng = random.Random(seed)
    return [space.to_str(space.sample(rng)) for _ in range(n)]


def drive(executor: Executor, jobs: dict[int, str] | list[str]) -> tuple[float, list[JobResult]]:
    """Score ``jobs`` (id -> genotype) keeping every worker busy, as the search does; (wall s, results)."""
    start = time.perf_counter()
    results: list[JobResult] = []
    queue = list(jobs.items() if isinstance(jobs, dict) else enumerate(jobs))[::-1]
    for _ in range(min(executor.num_workers, len(queue))):
        executor.submit(*queue.pop())
    while executor.pending():
        for result in executor.wait():
            results.append(result)
            if queue:
                executor.submit(*queue.pop())
    return time.perf_counter() - start, results


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def autogroup() -> str:
    path = Path("/proc/sys/kernel/sched_autogroup_enabled")
    return {"1": "on", "0": "off"}.get(path.read_text().strip(), "unknown") if path.exists() else "unknown"


def load() -> float:
    return os.getloadavg()[0]


MODES = (("in-process", "local", 1), ("ray, 1 worker", "ray", 1), ("ray, 2 workers", "ray", 2))


def measure(config: ScoringSettings, jobs: list[str], warmup: list[str], rounds: int) -> list[dict]:
    """Every mode on the same cells, interleaved: each round scores the next chunk in every mode
    (order reversed every other round), so load from other users hits all modes alike."""
    timing = {name: {"wall": 0.0, "results": [], "loads": []} for name, _, _ in MODES}
    session_start = time.perf_counter()
    session = RaySession(num_cpus=sum(w for _, kind, w in MODES if kind == "ray"))  # both pools at once
    startup = {"ray_session": time.perf_counter() - session_start}
    executors = {}
    try:
        for name, kind, workers in MODES:
            began = time.perf_counter()
            executors[name] = make_executor(config, kind, workers=None if kind == "local" else workers)
            startup[name] = time.perf_counter() - began
            drive(executors[name], warmup[: 2 * workers])
        chunk = -(-len(jobs) // rounds)
        for r in range(rounds):
            part = dict(list(enumerate(jobs))[r * chunk:(r + 1) * chunk])
            for name, _, _ in MODES if r % 2 == 0 else MODES[::-1]:
                timing[name]["loads"].append(load())
                wall, results = drive(executors[name], part)
                timing[name]["wall"] += wall
                timing[name]["results"] += results
    finally:
        for executor in executors.values():
            executor.close()
        session.close()
    return [row(name, kind, workers, timing[name], startup) for name, kind, workers in MODES]


def row(name: str, kind: str, workers: int, timing: dict, startup: dict) -> dict:
    results, wall = timing["results"], timing["wall"]
    inside = statistics.fmean(r.seconds for r in results)
    per_eval = wall / len(results)
    return {
        "mode": name,
        "kind": kind,
        "workers": workers,
        "evaluations": len(results),
        "failed": sum(not r.ok for r in results),
        "startup_s": startup[name] + (startup["ray_session"] if kind == "ray" else 0.0),
        "wall_s": wall,
        "evals_per_s": len(results) / wall,
        "wall_per_eval_s": per_eval,
        "worker_s_per_eval": inside,
        # share of each worker's wall time not spent scoring (dispatch, transfer, idle)
        "overhead": per_eval * workers / inside - 1,
        "workers_used": sorted({r.worker for r in results}),
        "load_mean": statistics.fmean(timing["loads"]),
        "scores": {r.job_id: r.score for r in results},
    }


def report(rows: list[dict], meta: dict) -> tuple[str, dict]:
    by_mode = {(r["kind"], r["workers"]): r for r in rows}
    local, one, two = by_mode[("local", 1)], by_mode[("ray", 1)], by_mode[("ray", 2)]
    summary = {
        "speedup_2_vs_1_ray_workers": two["evals_per_s"] / one["evals_per_s"],
        "ray_1_worker_vs_in_process": one["evals_per_s"] / local["evals_per_s"],
        "ray_overhead_1_worker": one["overhead"],
        "ray_overhead_2_workers": two["overhead"],
        "same_scores_in_every_mode": local["scores"] == one["scores"] == two["scores"],
        # 1.0 when each worker has a core of its own; higher when the two workers shared CPU time
        "worker_slowdown_2_vs_1": two["worker_s_per_eval"] / one["worker_s_per_eval"],
    }
    summary["meets_speedup_target"] = summary["speedup_2_vs_1_ray_workers"] >= TARGET_SPEEDUP
    summary["meets_overhead_target"] = summary["ray_overhead_1_worker"] <= TARGET_OVERHEAD
    lines = [
        "# Executor throughput",
        "",
        f"{meta['n']} NB-201 cells (seed {meta['seed']}) scored with Sweetimator, interval "
        f"[{INTERVAL[0]:g}, {INTERVAL[1]:g}), batch {meta['batch_size']}, on {meta['dataset']}; "
        f"one job in flight per worker; start-up and a warm-up of 2 cells per worker excluded; "
        f"the modes take turns in {meta['rounds']} rounds of {meta['n'] // meta['rounds']} cells.",
        f"Machine: {meta['cpus']} CPUs ({meta['cpu']}), torch {meta['torch']}, one torch thread per worker; "
        f"{meta['date']}. The machine is shared with other users: the 1-minute load average at the "
        f"start of each mode's turns is given (2.0 = both cores busy).",
        "",
        "| mode | evals/s | wall s/eval | scoring s/eval (in worker) | overhead | start-up s | mean load |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['evals_per_s']:.3f} | {r['wall_per_eval_s']:.3f} | {r['worker_s_per_eval']:.3f} "
            f"| {r['overhead']:+.1%} | {r['startup_s']:.1f} | {r['load_mean']:.2f} |"
        )
    lines += [
        "",
        f"- 2 Ray workers vs 1: **{summary['speedup_2_vs_1_ray_workers']:.2f}x** "
        f"(target >= {TARGET_SPEEDUP}x: {'met' if summary['meets_speedup_target'] else 'NOT met'}).",
        f"- Ray, 1 worker vs in-process: {summary['ray_1_worker_vs_in_process']:.2f}x.",
        f"- Ray's per-evaluation overhead once started (1 worker): **{summary['ray_overhead_1_worker']:+.1%}** "
        f"(target <= {TARGET_OVERHEAD:.0%}: {'met' if summary['meets_overhead_target'] else 'NOT met'}); "
        f"2 workers: {summary['ray_overhead_2_workers']:+.1%}.",
        "- Overhead = wall time per evaluation x workers / scoring time measured inside the worker - 1.",
        f"- Scoring time per evaluation inside a worker, 2 workers vs 1: {summary['worker_slowdown_2_vs_1']:.2f}x "
        "(1.0x when each worker has a core to itself; near 2x means the two workers shared one core's worth of "
        f"CPU). Kernel session autogrouping: {meta['autogroup']} (when on, every login session gets an equal CPU "
        "share, however many processes it runs).",
        f"- Same score for every cell in every mode: {'yes' if summary['same_scores_in_every_mode'] else 'NO'}.",
        "",
        f"Command: `{meta['command']}`",
        "",
    ]
    return "\n".join(lines), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"),
                        help="folder holding cifar-10-batches-py/ (synthetic data, labelled as such, if absent)")
    parser.add_argument("--n", type=int, default=80, help="cells scored per mode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="turns each mode takes (interleaved)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "throughput"), help="writes OUT.md and OUT.json")
    args = parser.parse_args()

    torch.set_num_threads(1)  # the in-process executor gets one core, like each Ray worker
    has_cifar = (Path(args.data_dir) / "cifar-10-batches-py").is_dir()
    dataset = "cifar10" if has_cifar else "synthetic"
    config = ScoringSettings(space="nb201", estimator="sweet", estimator_settings={"interval": INTERVAL},
                           dataset=dataset, data_dir=args.data_dir if has_cifar else None,
                           batch_size=args.batch_size, seed=args.seed)
    jobs = genotypes(args.n, args.seed)
    warmup = genotypes(4, args.seed + 1)
    rows = measure(config, jobs, warmup, args.rounds)
    meta = {
        "n": args.n, "seed": args.seed, "batch_size": args.batch_size, "rounds": args.rounds,
        "dataset": "CIFAR-10 (shared subset)" if has_cifar else "SYNTHETIC data (CIFAR-10 not found)",
        "cpus": os.cpu_count(), "cpu": cpu_name(), "torch": torch.__version__, "autogroup": autogroup(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "nice .venv/bin/python benchmarks/throughput.py "
                   f"--data-dir {args.data_dir} --n {args.n} --seed {args.seed} --rounds {args.rounds}",
    }
    markdown, summary = report(rows, meta)
    out = Path(args.out)
    out.with_suffix(".md").write_text(markdown)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=2) + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
