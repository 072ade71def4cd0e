"""Training a search run's best distinct cells into ``RUN_DIR/train/<rank>-<key hash>/``.

Sequential in process, or several at once as Ray tasks (one GPU each where there are GPUs).
The ranking is the run record's own (``evonas.runs.Tally``), the one ``evonas show`` prints;
so is the Pareto front (``--front``). ``--pick "params<=1M"`` takes the best-scored cell within
bounds on its costs (recorded by the search, or computed here for params and flops).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

import ray
import torch

import search_spaces
from evonas.costs import CostModel, LatencyTable
from evonas.errors import EvonasError
from evonas.execution import RaySession
from evonas.runs import RunRecord
from evonas.training.genotype import key_hash, train_genotype
from evonas.recipes import resolve_recipe
from evonas.training.trainer import TrainProgress
from evonas.settings import COSTS, parse_cost
from evonas.user_errors import USER_ERRORS

_BOUND = re.compile(r"^\s*([a-z]+)\s*(<=|<)\s*(\S+)\s*$")


def top_genotypes(run_dir: str | Path, k: int) -> list[dict[str, Any]]:
    """The best ``k`` ok-scored genotypes of a run, distinct by canonical key, best first.

    Each entry: ``rank`` (1-based), ``genotype``, ``key``, ``score`` (the search's ranking,
    lower first when the run's estimator says lower is better).
    """
    if k < 1:
        raise EvonasError(f"--top must be at least 1, not {k}")
    top = RunRecord.open(run_dir).tally().top(k)
    if not top:
        raise EvonasError(f"{run_dir} has no successfully scored genotype yet; run or resume the search first")
    return _ranked(top)


def _ranked(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"rank": i, "genotype": r["genotype"], "key": r["key"], "score": float(r["score"])}
            for i, r in enumerate(cells, start=1)]


def front_genotypes(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's Pareto front (cheapest first), ranked 1.. in that order."""
    tally = RunRecord.open(run_dir).tally()
    if not tally.front_costs:
        raise EvonasError(f"{run_dir} optimised one objective, so it has no front; --front needs a search "
                          "with --objectives (use --top K or --pick)")
    if not tally.front():
        raise EvonasError(f"{run_dir} has no successfully scored genotype yet; run or resume the search first")
    return _ranked(tally.front())


def parse_bounds(text: str) -> dict[str, tuple[str, float]]:
    """``params<=1M,latency<3ms`` -> {cost: (operator, value in the cost's unit)}."""
    bounds = {}
    for term in filter(str.strip, text.split(",")):
        match = _BOUND.match(term)
        if match is None or match.group(1) not in COSTS:
            raise EvonasError(f"--pick takes bounds like params<=1M or latency<3ms on {', '.join(COSTS)}, not {term!r}")
        name, op, value = match.groups()
        bounds[name] = (op, parse_cost(name, value, flag="--pick"))
    if not bounds:
        raise EvonasError("--pick needs a bound, like params<=1M")
    return bounds


def pick_genotype(run_dir: str | Path, text: str) -> list[dict[str, Any]]:
    """The best-scored distinct cell of the run within the bounds of ``text`` (as a one-item ranking)."""
    bounds = parse_bounds(text)
    record = RunRecord.open(run_dir)
    search = record.settings().search
    cells = record.tally().top(10**9)
    missing = [name for name in bounds if any(name not in c.get("costs", {}) for c in cells)]
    if missing:
        table = None
        if "latency" in missing:
            if not record.latency_table_path.exists():
                raise EvonasError(f"{run_dir} measured no latency; pick on params or flops, or search with --max-latency "
                                  "or --objectives ...,latency")
            table = LatencyTable.from_dict(record.read_latency_table())
        model = CostModel(search.space, search.dataset, missing, table)
        cells = [{**c, "costs": {**c.get("costs", {}), **model(c["genotype"], c["key"])}} for c in cells]
    within = [c for c in cells if all(c["costs"][n] < v if op == "<" else c["costs"][n] <= v
                                      for n, (op, v) in bounds.items())]
    if not within:
        raise EvonasError(f"no scored cell of {run_dir} satisfies {text!r}")
    return _ranked(within[:1])


def train_top(
    run_dir: str | Path,
    k: int,
    overrides: Mapping[str, Any] | None = None,
    *,
    front: bool = False,
    pick: str | None = None,
    resume: bool = False,
    workers: int | None = None,
    address: str | None = None,
    device: str | None = None,
    progress: TrainProgress | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train the top ``k`` genotypes of a search run into ``RUN_DIR/train/<rank>-<key hash>/``.

    Dataset and data folder default to the run's. Sequential in-process unless several GPUs,
    ``workers > 1`` or a Ray ``address`` allow parallel Ray tasks (one GPU each when there are GPUs).
    Results come back in rank order, each with ``rank`` and ``score`` (the search score) added;
    ``on_result`` hears each as it finishes. ``front`` trains the Pareto front instead of the top
    ``k``, ``pick`` the best cell within cost bounds (see ``pick_genotype``).
    """
    record = RunRecord.open(run_dir)
    if front:
        candidates = front_genotypes(run_dir)
    elif pick is not None:
        candidates = pick_genotype(run_dir, pick)
    else:
        candidates = top_genotypes(run_dir, k)
    return train_candidates(record, candidates, record.train_dir, overrides, resume=resume, workers=workers,
                            address=address, device=device, progress=progress, on_result=on_result)


def train_candidates(
    record: RunRecord,
    candidates: list[dict[str, Any]],
    into: Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
    workers: int | None = None,
    address: str | None = None,
    device: str | None = None,
    progress: TrainProgress | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ranked ``candidates`` (``top_genotypes`` entries) of a run into ``into/<rank>-<key hash>/``."""
    search = record.settings().search
    merged = {"dataset": search.dataset, "data_dir": search.data_dir,
              **{name: value for name, value in (overrides or {}).items() if value is not None}}
    resolve_recipe(search_spaces.get(search.space), merged)  # bad settings fail here, before any training starts
    jobs = [(c, Path(into) / f"{c['rank']}-{key_hash(c['key'])}") for c in candidates]

    def finish(candidate: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        result = {**result, "rank": candidate["rank"], "score": candidate["score"]}
        if on_result is not None:
            on_result(result)
        return result

    gpus = torch.cuda.device_count() if device in (None, "auto") or str(device).startswith("cuda") else 0
    parallel = min(len(jobs), workers if workers is not None else max(gpus, 1))
    if address is None and parallel <= 1:
        return [finish(c, train_genotype(search.space, c["genotype"], out, merged, resume=resume, device=device,
                                         progress=progress)) for c, out in jobs]
    calls = [dict(space=search.space, genotype=c["genotype"], out_dir=str(out), overrides=merged, resume=resume,
                  device=device) for c, out in jobs]
    results: list[dict[str, Any]] = [{} for _ in jobs]

    def done(index: int, result: dict[str, Any]) -> None:
        results[index] = finish(jobs[index][0], result) if result.get("status") == "ok" else result

    _map_on_ray(calls, workers=parallel, gpus=min(gpus, parallel), address=address, on_done=done)
    for (candidate, _), result in zip(jobs, results):
        if result.get("status") != "ok":  # the others are finished and saved; --resume skips them
            raise EvonasError(f"training rank {candidate['rank']} failed: {result['error']}")
    return results


def _train_task(call: dict[str, Any]) -> dict[str, Any]:
    """Body of one Ray task: a training without progress output; user errors come back as data."""
    try:
        return train_genotype(**call)
    except USER_ERRORS as exc:
        return {"status": "failed", "error": str(exc), "genotype": call["genotype"], "out_dir": call["out_dir"]}


def _map_on_ray(calls: list[dict[str, Any]], workers: int, gpus: int, address: str | None,
                on_done: Callable[[int, dict[str, Any]], None]) -> None:
    """Run ``_train_task`` for every call as a Ray task (one GPU each where the cluster has GPUs).

    Joins ``address`` or an already running Ray; otherwise starts a loopback-only local Ray with
    ``workers`` CPUs (or ``gpus`` GPUs) and its own temp folder, and shuts it down afterwards.
    """
    session = RaySession(address=address, num_cpus=workers if gpus == 0 else None, num_gpus=gpus or None)
    try:
        on_gpu = ray.cluster_resources().get("GPU", 0) >= 1
        task = ray.remote(num_gpus=1 if on_gpu else 0, num_cpus=1, max_retries=0)(_train_task)
        index = {task.remote(call): i for i, call in enumerate(calls)}
        pending = list(index)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            on_done(index[ready[0]], ray.get(ready[0]))
    finally:
        session.close()
