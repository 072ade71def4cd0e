"""``evonas search`` and ``evonas show``: run (or resume) a search, and summarise any run."""
from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from evonas.cli.app import app, console
from evonas.cli.train import refine_with_progress, train_run_top
from evonas.errors import EvonasError
from evonas.settings import (
    BATCH_POLICIES,
    COSTS,
    DEFAULT_LATENCY_BATCH,
    DEFAULT_LATENCY_DEVICE,
    DEFAULT_LATENCY_THREADS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BUDGET,
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_CHECKPOINT_SECONDS,
    DEFAULT_DATASET,
    DEFAULT_ESTIMATOR,
    DEFAULT_SPACE,
    DEFAULT_TOP_K,
    format_cost,
    parse_cost,
    parse_cost_bounds,
    parse_objectives,
)



@app.command("search")
def search_cmd(
    space: Optional[str] = typer.Option(None, "--space", help=f"Search space: nb201, darts, nb101 or a plug-in (`evonas spaces` lists them). (default: {DEFAULT_SPACE})"),
    estimator: Optional[str] = typer.Option(None, "--estimator", help=f"Zero-cost estimator (see `evonas estimators`). (default: {DEFAULT_ESTIMATOR})"),
    budget: Optional[int] = typer.Option(None, "--budget", help=f"Evaluations, cache hits included. (default: {DEFAULT_BUDGET}, or none with --time-limit)"),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Stop submitting after this many wall-clock seconds."),
    population: Optional[int] = typer.Option(None, "--population", help="Population size P. (default: the space's own, listed by `evonas spaces`; 25 for nb201)"),
    sample: Optional[int] = typer.Option(None, "--sample", help="Tournament sample size S. (default: the space's own, listed by `evonas spaces`; 5 for nb201)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for every random draw of the run. (default: 0)"),
    scoring_seed: Optional[int] = typer.Option(None, "--scoring-seed", help="Seed of the scoring alone (weight init, fixed batches), so searches of several --seed values score cells alike and can share a --score-store. (default: --seed)"),
    score_store: Optional[Path] = typer.Option(None, "--score-store", help="Scores shared between runs. A JSON-lines FILE shared by searches (several seeds, or runs at the same time): cells already in it are not scored again, new scores are appended. Or a finished `evonas correlate` FOLDER (read only): a cell it scored with the same settings and code takes that score, so a search over a fully scored table replays live scoring in seconds."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help=f"cifar10, cifar100, imagenet16-120 or synthetic. (default: {DEFAULT_DATASET})"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder (default $EVONAS_DATA or the user cache)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=f"Images per estimator batch. (default: {DEFAULT_BATCH_SIZE})"),
    batch_policy: Optional[str] = typer.Option(None, "--batch-policy", help=f"fixed (one batch for all cells) or fresh (one per evaluation). (default: {BATCH_POLICIES[0]})"),
    interval: Optional[tuple[float, float]] = typer.Option(None, "--interval", help="Sweet-family gradient interval LO HI. (default: calibrated)"),
    executor: Optional[str] = typer.Option(None, "--executor", help="local or ray. (default: ray if --workers > 1 or --address, else local)"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Scoring workers; more than 1 means Ray actors. (default: 1, or one per CPU/GPU with --executor ray)"),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", help="GPUs per Ray actor, fractions allowed."),
    address: Optional[str] = typer.Option(None, "--address", help="Join a running Ray cluster (host:port or auto)."),
    ship_data: bool = typer.Option(False, "--ship-data", help="Load the dataset here and send it to every Ray node through Ray's object store (for nodes without the data)."),
    jobs_per_call: Optional[int] = typer.Option(None, "--jobs-per-call", help="Jobs per Ray actor call: for evaluations of a few milliseconds, where Ray's per-call cost shows. (default: 1)"),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder. (default: RUNS_ROOT/<time>-<space>-<estimator>)"),
    runs_root: Optional[Path] = typer.Option(None, "--runs-root", help="Parent of new run folders. (default: runs)"),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help=f"Checkpoint every K evaluations. (default: {DEFAULT_CHECKPOINT_EVERY})"),
    checkpoint_seconds: Optional[float] = typer.Option(None, "--checkpoint-seconds", help=f"...and no sooner than S seconds after the last checkpoint (0 = every K; resume is exact either way). (default: {DEFAULT_CHECKPOINT_SECONDS:g})"),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Score M random cells first and start from the best P (0 = off). (default: 0)"),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Benchmark accuracy table (NB-201): show the true accuracy of the top cells."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help=f"Rows of the final table. (default: {DEFAULT_TOP_K})"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder (after Ctrl-C or a kill)."),
    train_top: int = typer.Option(0, "--train-top", help="Then train the K best distinct cells with the published recipe into RUN/train/ (see `evonas train`)."),
    train_epochs: Optional[int] = typer.Option(None, "--train-epochs", help="With --train-top: epochs instead of the recipe's (quick runs)."),
    refine_top: int = typer.Option(0, "--refine-top", help="Then train the K best distinct cells briefly (--refine-epochs) and return the best by that accuracy (see `evonas refine`)."),
    refine_epochs: int = typer.Option(2, "--refine-epochs", help="With --refine-top: epochs of each short training (doubling per round with --refine-halving)."),
    refine_halving: bool = typer.Option(False, "--refine-halving", help="With --refine-top: successive halving, the better half goes on with twice the epochs."),
    refine_images: Optional[int] = typer.Option(None, "--refine-images", help="With --refine-top: training images per short training (default: all)."),
    max_params: Optional[str] = typer.Option(None, "--max-params", help="Only cells with at most this many parameters, e.g. 1.0M or 500K."),
    max_flops: Optional[str] = typer.Option(None, "--max-flops", help="Only cells with at most this many FLOPs per image, e.g. 150M."),
    max_latency: Optional[str] = typer.Option(None, "--max-latency", help="Only cells predicted at most this slow, e.g. 2.5ms (see `evonas latency`)."),
    cost_table: Optional[Path] = typer.Option(None, "--cost-table", help="CSV of measured costs per cell (arch plus numeric columns, e.g. HW-NAS-Bench's pixel3_latency): its columns become costs for --max-cost and --objectives."),
    max_cost: Optional[list[str]] = typer.Option(None, "--max-cost", help="Only cells with at most this cost, NAME=VALUE, e.g. pixel3_latency=5ms or edgegpu_energy=20mJ (a --cost-table column, or params/flops/latency); repeatable."),
    objectives: Optional[str] = typer.Option(None, "--objectives", help=f"The estimator plus costs ({', '.join(COSTS)}, or --cost-table columns) to optimise together, e.g. sweet,params or sweet,pixel3_latency."),
    algorithm: Optional[str] = typer.Option(None, "--algorithm", help="Search strategy: aging, nsga2, random, or a plug-in of the evonas.strategies entry point. (default: aging for one objective, nsga2 for several)"),
    latency_device: Optional[str] = typer.Option(None, "--latency-device", help=f"Device latency is measured on: cpu or cuda[:N]. (default: {DEFAULT_LATENCY_DEVICE})"),
    latency_batch_size: Optional[int] = typer.Option(None, "--latency-batch-size", help=f"Images per timed forward pass. (default: {DEFAULT_LATENCY_BATCH})"),
    latency_threads: Optional[int] = typer.Option(None, "--latency-threads", help=f"CPU threads while timing. (default: {DEFAULT_LATENCY_THREADS})"),
    latency_statistic: Optional[str] = typer.Option(None, "--latency-statistic", help="median or min of the timing repeats (min: steadier on a busy machine). (default: median)"),
    latency_backend: Optional[str] = typer.Option(None, "--latency-backend", help="What runs the timed networks: torch (PyTorch eager) or onnxruntime (needs the extra evonas\\[onnx]). (default: torch)"),
) -> None:
    """Aging evolution (or NSGA-II over several objectives) scored by a zero-cost estimator; writes a resumable run folder."""
    import search_spaces
    from evonas.progress import SearchBar
    from evonas.runs import default_run_name
    from evonas.searching import resolve_settings, resume_search, start_search
    from evonas.settings import SearchSettings

    given = {
        "space": space, "estimator": estimator, "budget": budget, "time_limit": time_limit,
        "population": population, "sample": sample, "seed": seed, "scoring_seed": scoring_seed,
        "score_store": str(score_store) if score_store else None, "dataset": dataset,
        "data_dir": str(data_dir) if data_dir else None, "batch_size": batch_size, "batch_policy": batch_policy,
        "interval": interval, "executor": executor, "workers": workers, "gpus_per_worker": gpus_per_worker,
        "address": address, "ship_data": ship_data or None, "jobs_per_call": jobs_per_call, "checkpoint_every": checkpoint_every,
        "checkpoint_seconds": checkpoint_seconds, "warmup": warmup, "top_k": top_k,
        "algorithm": algorithm, "objectives": parse_objectives(objectives) if objectives is not None else None,
        "latency_device": latency_device, "latency_batch_size": latency_batch_size, "latency_threads": latency_threads,
        "latency_statistic": latency_statistic, "latency_backend": latency_backend,
    }
    limits = {"params": max_params, "flops": max_flops, "latency": max_latency}
    constraints = {name: parse_cost(name, text) for name, text in limits.items() if text is not None}
    for name, bound in parse_cost_bounds(max_cost or []).items():
        if name in constraints:
            raise EvonasError(f"--max-cost {name}= repeats --max-{name}; give one of them")
        constraints[name] = bound
    if cost_table is not None:
        given["cost_table"] = str(cost_table)
    if constraints:
        given["constraints"] = constraints
    given = {k: v for k, v in given.items() if v is not None}
    target: Optional[Path] = resume
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops as cleanly as Ctrl-C
    with SearchBar() as bar:
        try:
            if resume is not None:
                if run_dir is not None or runs_root is not None:
                    raise EvonasError("--resume continues the run in its own folder; drop --run-dir/--runs-root")
                path = resume_search(resume, {k: v for k, v in given.items() if k != "top_k"}, progress=bar.update)
            else:
                if "time_limit" in given and "budget" not in given:
                    given["budget"] = None  # a time limit alone bounds the run
                settings = resolve_settings(SearchSettings(**given))
                if truth is not None:  # checked before the search, not after it
                    space_obj = search_spaces.get(settings.space)
                    space_obj.truth_column(settings.dataset)
                    space_obj.benchmark(truth)
                target = run_dir or (runs_root or Path("runs")) / default_run_name(settings.space, settings.estimator)
                path = start_search(settings, run_dir=target, progress=bar.update, interval_progress=bar.calibrating)
        except KeyboardInterrupt:
            bar.stop()
            if target is not None and (target / "checkpoint.json").exists():
                print(f"interrupted; checkpoint saved. Continue with: evonas search --resume {target}", file=sys.stderr)
            else:
                print("interrupted before the search started; nothing to resume", file=sys.stderr)
            raise typer.Exit(130) from None
    if refine_top > 0:  # finished trainings of an earlier attempt are read back, half-done ones continue
        refine_with_progress(path, refine_top, refine_epochs, halving=refine_halving,
                             overrides={"train_images": refine_images}, address=address)
    print_run(path, top_k, truth)
    if train_top > 0:  # finished or half-done trainings of an earlier attempt are picked up, not redone
        train_run_top(path, train_top, {"epochs": train_epochs}, resume=True, address=address)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler: stop like Ctrl-C, so the search checkpoints first."""
    raise KeyboardInterrupt


def print_run(run_dir: Path, top_k: Optional[int], truth: Optional[Path],
              budgets: Optional[dict[str, list[float]]] = None) -> None:
    """Summary lines and the top-k table of a run folder (used by search and show)."""
    import search_spaces
    from evonas.runs import RunRecord

    s = RunRecord.open(run_dir).summary(top_k)
    search = s["config"].get("search", {})
    est = s["config"].get("estimator", {})
    interval = est.get("settings", {}).get("interval")
    loop = est.get("name") == "external"  # an ask/tell loop (evonas.searching.ask_tell.EXTERNAL)
    resume = f"evonas.ask_tell({s['run_dir']!r})" if loop else f"evonas search --resume {s['run_dir']}"
    state = "finished" if s["complete"] else f"stopped (continue with: {resume})"
    algorithm = search.get("algorithm")
    budget = f"/{s['budget']}" if s["budget"] else ""
    console.print(f"run {s['run_dir']}: {search.get('space')} / {est.get('name')}"
                  + (f" interval [{interval[0]:g}, {interval[1]:g})" if interval else "")
                  + f", P={search.get('population')} S={search.get('sample')} seed={search.get('seed')}"
                  + (f", {algorithm} over {','.join(search['objectives'])}" if search.get("objectives")
                     else f", {algorithm}" if algorithm not in (None, "aging") else ""),
                  soft_wrap=True)
    console.print(f"{state}: {s['evaluations']}{budget} evaluations, {s['failed']} failed, "
                  f"cache hits {s['cache_hits']} ({s['cache_hit_rate']:.0%}), "
                  f"{s['elapsed']:.1f} s ({s['rate']:.2f} eval/s)", soft_wrap=True)
    accuracies: dict[str, float | None] = {}
    if truth is not None:
        space = search_spaces.get(search.get("space"))
        column = space.truth_column(search.get("dataset", DEFAULT_DATASET))
        table = space.benchmark(truth)
        accuracies = {r["genotype"]: table.accuracy(r["genotype"], column) for r in s["top"]}
    if s.get("infeasible"):
        limits = ", ".join(f"{name} <= {format_cost(name, v)}" for name, v in search.get("constraints", {}).items())
        console.print(f"{s['infeasible']} children broke the constraints ({limits}) and were not scored", soft_wrap=True)
    table = Table("rank", "id", "score", *(["true acc"] if truth else []), title=f"top {len(s['top'])} cells")
    table.add_column("genotype", overflow="fold")
    for rank, rec in enumerate(s["top"], 1):
        acc = accuracies.get(rec["genotype"])
        table.add_row(str(rank), str(rec["id"]), f"{rec['score']:.6g}",
                      *([f"{acc:.2f}" if acc is not None else "-"] if truth else []), rec["genotype"])
    console.print(table)
    if "front" in s:
        _print_front(s, truth, accuracies, budgets)
    print_refinement(run_dir, truth)


def print_refinement(run_dir: Path, truth: Optional[Path]) -> None:
    """The refined head (``refine.json``): each round's short-training accuracies and the chosen cell."""
    import search_spaces
    from evonas.runs import RunRecord
    from evonas.training.refine import read_refinement

    refined = read_refinement(run_dir)
    if refined is None:
        return
    true_acc = lambda genotype: None  # noqa: E731
    if truth is not None:
        search = RunRecord.open(run_dir).settings().search
        space = search_spaces.get(search.space)
        bench, column = space.benchmark(truth), space.truth_column(search.dataset)
        true_acc = lambda genotype: bench.accuracy(genotype, column)  # noqa: E731
    for number, rnd in enumerate(refined["rounds"]):
        table = Table("search rank", "score", "short-training acc", *(["true acc"] if truth else []),
                      title=f"refinement round {number}: {len(rnd['cells'])} cells x {rnd['epochs']} epochs")
        table.add_column("genotype", overflow="fold")
        for cell in rnd["cells"]:
            acc = true_acc(cell["genotype"])
            table.add_row(str(cell["rank"]), f"{cell['score']:.6g}", f"{cell['accuracy']:.2f}",
                          *([f"{acc:.2f}" if acc is not None else "-"] if truth else []), cell["genotype"])
        console.print(table)
    chosen = refined["chosen"]
    state = "" if refined["complete"] else " (unfinished: refine again with the same settings to continue)"
    console.print(f"refined choice: search rank {chosen['rank']}, {chosen['accuracy']:.2f}% after short training, "
                  f"{refined['training_seconds']:.0f} s of training{state}: {chosen['genotype']}", soft_wrap=True)


def _print_front(s: dict, truth: Optional[Path], accuracies: dict[str, float | None],
                 budgets: Optional[dict[str, list[float]]] = None) -> None:
    """The run's Pareto front, cheapest first; with --truth its true accuracies, regret per budget
    and hypervolume ratio against the table, and the picture with the table's true front."""
    import search_spaces

    if truth is not None:
        space = search_spaces.get(s["config"]["search"]["space"])
        column = space.truth_column(s["config"]["search"].get("dataset", DEFAULT_DATASET))
        bench = space.benchmark(truth)
        accuracies = {r["genotype"]: bench.accuracy(r["genotype"], column) for r in s["front"]}
    names = s["front_objectives"]
    table = Table("id", "score", *names, *(["true acc"] if truth else []),
                  title=f"Pareto front: {len(s['front'])} cells (score and {', '.join(names)})")
    table.add_column("genotype", overflow="fold")
    for rec in s["front"]:
        acc = accuracies.get(rec["genotype"])
        table.add_row(str(rec["id"]), f"{rec['score']:.6g}", *(format_cost(n, rec["costs"][n]) for n in names),
                      *([f"{acc:.2f}" if acc is not None else "-"] if truth else []), rec["genotype"])
    console.print(table)
    plot = Path(s["run_dir"]) / "front.png"
    if plot.exists():
        console.print(f"front plot: {plot}", soft_wrap=True)
    if truth is not None:
        from evonas.runs import RunRecord
        from evonas.searching.pareto import plot_front

        quality = front_quality_or_reason(Path(s["run_dir"]), truth, budgets)
        if quality is None:
            return
        _print_quality(quality["costs"])
        cells = RunRecord.open(s["run_dir"]).tally().cells()
        known = {c["genotype"]: bench.accuracy(c["genotype"], column) for c in cells}
        truth_plot = Path(s["run_dir"]) / "front-truth.png"
        plot_front(truth_plot, cells, s["front"], "score", names, truth={g: a for g, a in known.items() if a is not None},
                   true_front=quality["true_front"])
        console.print(f"front with true accuracies: {truth_plot} (and the true front of the table's {len(bench)} cells)",
                      soft_wrap=True)


def front_quality_or_reason(run_dir: Path, truth: Path, budgets: Optional[dict[str, list[float]]]) -> Optional[dict]:
    """``run_front_quality`` with a progress bar; None (said why) if the table's costs are not computable."""
    from evonas.progress import counted
    from evonas.searching.front_quality import run_front_quality
    from evonas.user_errors import USER_ERRORS

    try:
        with counted() as bar:
            task = bar.add_task("costs of the table's cells", total=None)
            return run_front_quality(run_dir, truth, budgets,
                                     lambda done, total: bar.update(task, completed=done, total=total))
    except USER_ERRORS as exc:
        console.print(f"front not judged against the table: {exc}", soft_wrap=True)
        return None


def _print_quality(quality: dict[str, dict]) -> None:
    """Regret at each budget and the hypervolume ratio of the front, per cost."""
    for name, q in quality.items():
        regrets = ", ".join(f"{format_cost(name, b)} {'-' if r is None else f'{r:.2f}'}"
                            for b, r in zip(q["budgets"], q["regret"]))
        console.print(f"{name}: regret (table's best under the budget minus the front's) {regrets}; "
                      f"hypervolume {q['hv_ratio']:.3f} of the table's true front "
                      f"(reference {format_cost(name, q['reference'][0])}, {q['reference'][1]:.2f}%)", soft_wrap=True)


def parse_budgets(terms: list[str]) -> dict[str, list[float]]:
    """``--budgets params=0.2M,0.4M`` terms -> {cost: [budgets in its stored unit]}."""
    out: dict[str, list[float]] = {}
    for term in terms:
        name, sep, values = (part.strip() for part in term.partition("="))
        if not sep or not name or not values:
            raise EvonasError(f"--budgets takes COST=V1,V2,..., like params=0.2M,0.6M, not {term!r}")
        out[name] = sorted(parse_cost(name, v, "--budgets") for v in values.split(","))
    return out


@app.command("show")
def show_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder written by `evonas search` (finished or not)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Rows of the table. (default: the run's --top-k)"),
    truth: Optional[Path] = typer.Option(None, "--truth", help="The space's benchmark table: add true accuracies and judge the Pareto front (regret per budget, hypervolume ratio)."),
    budgets: Optional[list[str]] = typer.Option(None, "--budgets", help="With --truth: the cost budgets of the regret, COST=V1,V2,... (e.g. params=0.2M,0.6M,1.6M); repeat per cost. (default: six spread over the table's range)"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary (and with --truth the front's quality) as JSON instead of tables."),
) -> None:
    """Summarise a search run: progress, failures, cache hits, speed, top cells, the front."""
    parsed = parse_budgets(budgets or [])
    if as_json:
        print_run_json(run_dir, top_k, truth, parsed)
    else:
        print_run(run_dir, top_k, truth, parsed)


def print_run_json(run_dir: Path, top_k: Optional[int], truth: Optional[Path], budgets: dict[str, list[float]]) -> None:
    """``show --json``: the run summary; with --truth each top and front cell's true accuracy and the front's quality."""
    import json

    import search_spaces
    from evonas.runs import RunRecord
    from evonas.searching.front_quality import run_front_quality

    s = RunRecord.open(run_dir).summary(top_k)
    if truth is not None:
        search = RunRecord.open(run_dir).settings().search
        space = search_spaces.get(search.space)
        bench, column = space.benchmark(truth), space.truth_column(search.dataset)
        for rec in s["top"] + s.get("front", []):
            rec["true_accuracy"] = bench.accuracy(rec["genotype"], column)
        if s.get("front"):
            s["front_quality"] = run_front_quality(run_dir, truth, budgets)["costs"]
    print(json.dumps(s, indent=1, default=str))
