"""``evonas correlate``: rank consistency of estimators against trained accuracy."""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich import box
from rich.table import Table

from evonas.cli.app import app, console, say
from evonas.settings import DEFAULT_BATCH_SIZE, DEFAULT_DATASET, DEFAULT_ESTIMATOR, DEFAULT_SPACE, EXECUTOR_KINDS


def _num(value: float | None, digits: int = 3) -> str:
    """A statistic for the table; ``-`` where it is undefined (null in summary.json)."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _stat(res: dict[str, Any], key: str, digits: int = 3) -> str:
    """A statistic, with ``±spread`` over seeds when several seeds were scored."""
    text = _num(res.get(key), digits)
    return f"{text}±{_num(res['std'].get(key), digits)}" if "std" in res and text != "-" else text


def _print_tables(summary: dict[str, Any], ndcg_k: int) -> None:
    ranking = Table("estimator", "scored", "spearman", "kendall", "in-size rho", "s/cell", title="whole ranking")
    head = Table("estimator", "P@1%", "P@5%", "P@10%", f"nDCG@{ndcg_k}", "top-ranked acc.", "its rank",
                 title="head of the ranking")
    for name, res in summary["results"].items():
        ranking.add_row(name, f"{res['scored']:g}/{res['n']:g}", _stat(res, "spearman"), _stat(res, "kendall"),
                        _stat(res, "size_bucket_spearman"), _num(res["seconds_per_cell"]))
        head.add_row(name, *(_stat(res, f"top{p}_precision") for p in (1, 5, 10)), _stat(res, f"ndcg{ndcg_k}"),
                     _stat(res, "top_ranked_truth", 2), _stat(res, "top_ranked_truth_rank", 0))
    console.print(ranking)
    console.print(head)
    for name, res in summary["results"].items():
        interval = res["settings"].get("interval")
        if interval:
            say(f"{name} interval: [{interval[0]:g}, {interval[1]:g})")


@app.command("correlate")
def correlate_cmd(
    space: str = typer.Option(DEFAULT_SPACE, "--space", help="Search space of the cells."),
    estimator: str = typer.Option(DEFAULT_ESTIMATOR, "--estimator", help="Comma-separated estimator names or composites (A+B, weights as B=0.5), e.g. sweet,synflow,sweet_snip+sweet_ntk+jacov."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Benchmark table (arch + accuracy columns) to sample cells from."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Number of seeded-random cells to score (required with --truth)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the cell sample, weight init and batches."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma-separated seeds of weight init and batches, one scoring each (the cell sample stays --seed's); reports mean and spread."),
    archs_file: Optional[Path] = typer.Option(None, "--archs-file", help="CSV of genotype strings (arch or genotype column) with an accuracy column; any space."),
    truth_column: str = typer.Option("cifar10_test", "--truth-column", help="Accuracy column of --truth / --archs-file."),
    dataset: str = typer.Option(DEFAULT_DATASET, "--dataset", help="Dataset the estimators see."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder (default $EVONAS_DATA or the user cache)."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Images per estimator batch."),
    interval: Optional[tuple[float, float]] = typer.Option(None, "--interval", help="Sweet-family gradient interval LO HI (default: calibrated)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default runs/correlate-<time>/)."),
    executor: str = typer.Option(EXECUTOR_KINDS[0], "--executor", help="local (in this process) or ray (a pool of workers)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Ray workers (default: one per CPU)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the --out folder (same flags): score only what its store lacks or what changed settings or code invalidate."),
    shard: str = typer.Option("0/1", "--shard", metavar="I/N", help="Score only the cells whose position p has p % N == I (0 <= I < N); join the shard folders with --merge."),
    merge: Optional[list[Path]] = typer.Option(None, "--merge", help="A correlate folder (e.g. a shard) to merge into --out; repeat for each. The other flags are then not used."),
    table_columns: Optional[str] = typer.Option(None, "--table-columns", help="Comma-separated numeric columns of the --truth/--archs-file table (e.g. NAS-Bench-Suite-Zero's synflow,params) correlated beside the estimators as table:<column>."),
    from_: Optional[list[Path]] = typer.Option(None, "--from", help="Re-report a finished correlate folder without scoring; repeat for one table across folders."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="With --from: write the table (and any --select) to this markdown file, under the command that regenerates it; text after its notes marker is kept."),
    title: str = typer.Option("Rank consistency", "--title", help="With --markdown: the file's heading."),
    composites: Optional[str] = typer.Option(None, "--composites", help="With --from: comma-separated composites of each folder's estimators (A+B, weights as B=2), computed from the stored part scores by the library's Composite.combine, nothing re-scored; a folder lacking a part skips it."),
    select: bool = typer.Option(False, "--select", help="With --from: choose a fitness (singles, size-aware residuals, composites of the folder's estimators) on half the cells, report it on the other half."),
    select_parts: int = typer.Option(2, "--select-parts", help="With --select: composites of 2 to this many parts."),
    select_splits: int = typer.Option(1, "--select-splits", help="With --select: seeded halvings to repeat the choice over (seeds 0..N-1)."),
    front_cost: Optional[list[str]] = typer.Option(None, "--front-cost", help="With --from: per fitness (every stored estimator, --composites, the recommended composites), the exact Pareto front of (score, this cost) over the folder's cells judged by true accuracy: regret per budget and HV ratio, the best any search with it can reach. params, flops or a --cost-table column; repeat or comma-separate."),
    cost_table: Optional[Path] = typer.Option(None, "--cost-table", help="With --front-cost: a CSV of measured costs per cell (arch + numeric columns, e.g. HW-NAS-Bench's pixel3_latency), read as `evonas search --cost-table` reads it."),
    budgets: Optional[list[str]] = typer.Option(None, "--budgets", help="With --front-cost: the regret's budgets, COST=V1,V2,... (e.g. params=0.2M,0.6M,1.6M); repeat per cost. (default: six spread over the cells' range)"),
) -> None:
    """Rank consistency of estimators against true accuracy, whole ranking and head.

    Spearman, Kendall, precision of the top 1/5/10%, nDCG@100, the true accuracy of the
    top-ranked cell (and its true rank), and Spearman within parameter-count quintiles.
    Every score goes to <out>/scores.jsonl as it comes, so --resume continues a killed run,
    and --shard I/N with --merge splits the cells over processes or machines.
    """
    from evonas import correlating as corr
    from evonas.errors import EvonasError
    from evonas.progress import counted
    from evonas.scoring import parse_estimators

    if from_:
        specs = [c.strip() for c in composites.split(",") if c.strip()] if composites else []
        bound = _front_options(front_cost, cost_table, budgets)
        _report_from(from_, markdown, title, select, select_parts, select_splits, specs, bound)
        return
    if markdown is not None or select or composites or front_cost or budgets:
        raise EvonasError("--markdown, --select, --composites, --front-cost and --budgets read finished folders; "
                          "pass them with --from DIR")
    if cost_table is not None:
        raise EvonasError("--cost-table in correlate gives the costs of --front-cost; "
                          "pass it with --from DIR --front-cost COST")
    if merge:
        if out is None:
            raise EvonasError("--merge needs --out: the folder to write the merged scores and statistics to")
        _print_tables(corr.merge_folders(out, merge), corr.NDCG_K)
        say(f"merged {len(merge)} folder(s) into {out}: scores.jsonl, scores.csv, summary.json, scatter_*.png")
        return
    if resume and out is None:
        raise EvonasError("--resume continues the --out folder; pass --out")
    where = corr.parse_shard(shard)
    names = parse_estimators(estimator)
    cells = corr.load_cells(space, truth=truth, archs_file=archs_file, sample=sample, seed=seed, column=truth_column)
    settings = corr.CorrelateSettings(
        space=space, estimators=tuple(names), seed=seed, dataset=dataset,
        data_dir=str(data_dir) if data_dir else None, batch_size=batch_size, interval=interval,
        seeds=corr.parse_seeds(seeds) if seeds else None,
    )
    out = out or Path("runs") / time.strftime("correlate-%Y%m%d-%H%M%S")
    record = {
        **dataclasses.asdict(settings), "n": len(cells), "truth": str(truth) if truth else None,
        "archs_file": str(archs_file) if archs_file else None, "truth_column": truth_column, "sample": sample,
        "executor": executor, "workers": workers,
    }
    columns = None
    if table_columns:
        record["table_columns"] = [c.strip() for c in table_columns.split(",") if c.strip()]
        columns = corr.load_table_columns(space, record["table_columns"], truth=truth, archs_file=archs_file,
                                          sample=sample, seed=seed)
    per_name = len(corr.shard_positions(len(cells), where)) * len(settings.score_seeds)
    with counted() as bar:
        tasks = {name: bar.add_task(f"scoring {name}", total=per_name) for name in names}
        calibrating = bar.add_task("calibrating the Sweetimator interval", visible=False)
        summary = corr.correlate_into(
            out, cells, settings, record, resume=resume, shard=where,
            progress=lambda name, k: bar.advance(tasks[name], k), executor=executor, workers=workers,
            calibration_progress=lambda done, total: bar.update(calibrating, completed=done, total=total,
                                                                visible=done < total),
            table_columns=columns,
        )
    if summary is None:
        say(f"shard {shard} done: {out}/scores.jsonl; join the shards with "
            f"`evonas correlate --out MERGED --merge {out} --merge ...`")
        return
    _print_tables(summary, corr.NDCG_K)
    say(f"wrote {out}/scores.jsonl, scores.csv, summary.json and scatter_<estimator>.png")


def _front_options(names: list[str] | None, cost_table: Path | None, budgets: list[str] | None
                   ) -> tuple[list[str], Path | None, dict[str, list[float]]] | None:
    """``--front-cost``, ``--cost-table`` and ``--budgets`` checked together (None: no front bound asked for)."""
    from evonas.cli.search import parse_budgets
    from evonas.errors import EvonasError

    costs = list(dict.fromkeys(n.strip() for term in names or [] for n in term.split(",") if n.strip()))
    if not costs:
        if cost_table is not None or budgets:
            raise EvonasError("--cost-table and --budgets go with --front-cost COST (e.g. --front-cost params)")
        return None
    parsed = parse_budgets(budgets or [])
    stray = [name for name in parsed if name not in costs]
    if stray:
        raise EvonasError(f"--budgets gives {stray[0]}, which is not a --front-cost ({', '.join(costs)})")
    return costs, cost_table, parsed


def _print_bound(bound: dict[str, Any]) -> None:
    """One table per cost of ``front_bound.folder_bounds``."""
    from evonas.settings import format_cost

    for cost, res in bound["costs"].items():
        table = Table(title=f"front bound under {cost}: each fitness's exact front, by true accuracy "
                            f"({bound['coverage']}; true front {res['true_front_size']} cells); "
                            "regret (points) at budget", box=box.SIMPLE_HEAD)
        table.add_column("fitness", overflow="fold", min_width=10)
        for head in ("front", "HV", *(f"@{format_cost(cost, b)}" for b in res["budgets"])):
            table.add_column(head, justify="right", no_wrap=True)
        for name, row in res["fitness"].items():
            table.add_row(name, f"{row['front_size']:,}", _num(row["hv_ratio"]), *(_num(r, 2) for r in row["regret"]))
        console.print(table)


def _report_from(folders: list[Path], markdown: Path | None, title: str, select: bool, parts: int,
                 splits: int, composites: list[str],
                 bound: tuple[list[str], Path | None, dict[str, list[float]]] | None = None) -> None:
    """``--from``: the tables of finished folders (one table across them), nothing scored."""
    import shlex
    import sys

    from evonas import correlating as corr
    from evonas.correlating import front_bound

    sections, selections, bounds = [], [], []
    for folder in folders:
        stored = corr.read_folder(folder)
        # errors of --front-cost (unknown cost, a cost table missing cells) before anything is printed
        costs = front_bound.folder_costs(stored, bound[0], bound[1]) if bound is not None else {}
        extra, skipped = corr.composite_runs(stored, composites)
        stored.runs += extra
        if skipped:
            say(f"{folder}: skipped {', '.join(skipped)} (a part is not among its estimators)")
        summary = {"results": corr.run_results(stored.cells, stored.runs)}
        say(f"{folder}: {stored.space}, {len(stored.cells):,} cells")
        _print_tables(summary, corr.NDCG_K)
        where = f"{folder.resolve().parent.name}/{folder.name}"
        sections.append((f"{stored.space}: {where} ({len(stored.cells):,})", summary["results"]))
        if select:
            selections.append(corr.folder_selection(stored, max_parts=parts, splits=splits))
            say(f"selected on {folder}: {selections[-1]['selected']} (best Spearman on the selection half: "
                f"{selections[-1]['by_spearman']})")
        if bound is not None:
            fitness, _ = front_bound.fitness_columns(stored, composites)
            bounds.append(front_bound.folder_bounds(stored, costs, bound[2], fitness))
            _print_bound(bounds[-1])
            if not bounds[-1]["whole"]:
                say(f"{folder}: the front bound is {bounds[-1]['coverage']}")
    if markdown is not None:
        corr.write_markdown(markdown, "evonas " + shlex.join(sys.argv[1:]), sections, selections, title,
                            computed=bool(composites), bounds=bounds)
        say(f"wrote {markdown}")
