"""A fitness chosen by the head of the ranking: single estimators, composites and size-aware scores,
selected on half of the stored cells and measured on the other half, NAS-Bench-201 and DARTS apart.

Nothing is re-scored: the per-cell scores are the ones the consistency benchmarks stored
(``consistency_all/seed0*.csv``, all 15,625 NB-201 cells; ``consistency_darts/scores_shard*.csv``,
575 DARTS cells with their per-bin gradient counts). Composites are normalised with the
statistics ``resolve_scoring`` fixed on each space's calibration sample (stored beside the
scores), as a live ``evonas search --estimator A+B`` would; the reported composite numbers come
from the library's ``Composite.combine`` cell by cell. Size-aware candidates: the Sweet *share*
(sweet count over the weights counted: DARTS from the bin counts; NB-201, which stored no bins,
over the ``params`` count) and the Sweet family's residual after its trend in params
(``evonas.correlating.stats.size_residual``, fit on the selection half). Every statistic is
``evonas.correlating.stats``'s. Selection: the mean rank, among all candidates, of P@1%, P@5%,
the true accuracy of the top-ranked cell and the within-size Spearman, on the selection half.

    nice -n 10 .venv/bin/python benchmarks/head_selection.py            # writes head_selection.md/.json
    .venv/bin/python benchmarks/head_selection.py --splits 2            # fewer repeated splits

Data: NAS-Bench-201 / NATS-Bench topology accuracies (Dong et al.); NAS-Bench-301 validation
accuracies (Siems et al.) as shipped with NAS-Bench-Suite-Zero (Krishnakumar et al., 2022).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.stats import rankdata

from consistency_all import ESTIMATORS, merged_rows
from estimators.base import EstimatorResult
from evonas.correlating.report import json_safe
from evonas.correlating.stats import head_metrics, size_residual
from evonas.scoring.composite import RECOMMENDED, Normalisation, parse_composite

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EVONAS_SHARED", ROOT.parent / "shared"))
HERE = Path(__file__).resolve().parent
SWEET = ("sweet", "sweet_snip", "sweet_ntk")
#: Part weights tried in composites (ratios 1:1 and 1:2; all-2 is all-1 again).
WEIGHTS = (1.0, 2.0)
#: The selection objective: mean rank among the candidates of these statistics (higher is better).
CRITERIA = ("top1_precision", "top5_precision", "top_ranked_truth", "size_bucket_spearman")
COLUMNS = (("spearman", "Spearman"), ("kendall", "Kendall"), ("top1_precision", "P@1%"),
           ("top5_precision", "P@5%"), ("ndcg100", "nDCG@100"), ("top_ranked_truth", "top-1 acc."),
           ("top_ranked_truth_rank", "its rank"), ("size_bucket_spearman", "in-size rho"))
SHOWN = 5
#: Everything after this line of head_selection.md is written by hand and kept when the tables are rewritten.
FINDINGS = "<!-- findings: kept across runs -->"


@dataclass
class Cells:
    """One space's stored scores: columns by estimator, truth, params, split groups, normalisation."""

    space: str
    columns: dict[str, np.ndarray]
    truth: np.ndarray
    params: np.ndarray
    groups: list[str]
    settings: dict[str, dict]
    norms: dict[str, dict]
    weights_counted: np.ndarray
    note: str


def load_nb201(args: argparse.Namespace) -> Cells:
    work = HERE / "consistency_all"
    rows = merged_rows(work, 0)
    with args.nb201_truth.open(newline="") as fh:
        truth = {int(r["index"]): r for r in csv.DictReader(fh)}
    meta = json.loads((work / "normalisation_seed0.json").read_text())
    columns = {n: np.array([float(r[n]) for r in rows]) for n in ESTIMATORS}
    return Cells("NB-201", columns, np.array([float(truth[int(r["index"])]["cifar10_test"]) for r in rows]),
                 columns["params"], [truth[int(r["index"])]["iso_class"] for r in rows], meta["settings"],
                 meta["normalisation"], columns["params"] * 1e6,
                 "all 15,625 cells, seed 0, CIFAR-10 test accuracy; halves split by isomorphism class")


def load_darts(args: argparse.Namespace) -> Cells:
    work = HERE / "consistency_darts"
    by_row: dict[int, dict[str, str]] = {}
    for path in sorted(work.glob("scores_shard*.csv")):
        with path.open(newline="") as fh:
            for r in csv.DictReader(fh):
                by_row.setdefault(int(r["row"]), r)
    rows = [by_row[i] for i in sorted(by_row)]
    with args.darts_table.open(newline="") as fh:
        table = list(csv.DictReader(fh))
    meta = json.loads((work / "normalisation.json").read_text())
    columns = {n: np.array([float(r[n]) for r in rows]) for n in ESTIMATORS}
    bins = sorted((k for k in rows[0] if k.startswith("bin")), key=lambda k: int(k[3:]))
    return Cells("DARTS", columns, np.array([float(table[int(r["row"])]["val_accuracy"]) for r in rows]),
                 columns["params"], [r["row"] for r in rows], meta["settings"], meta["normalisation"],
                 np.array([sum(float(r[b]) for b in bins) for r in rows]),
                 f"{len(rows)} cells, seed 0, NAS-Bench-301 validation accuracy; halves split by cell")


def split(cells: Cells, seed: int) -> np.ndarray:
    """True for the selection half: half of the groups (isomorphism classes or cells), seeded."""
    groups = sorted(set(cells.groups))
    random.Random(seed).shuffle(groups)
    chosen = set(groups[: len(groups) // 2])
    return np.array([g in chosen for g in cells.groups])


def composite_specs(names: Sequence[str]) -> list[str]:
    """Every composite of 2 to 4 of ``names`` with part weights from WEIGHTS (not all the largest)."""
    specs = []
    for k in (2, 3, 4):
        for parts in itertools.combinations(names, k):
            for weights in itertools.product(WEIGHTS, repeat=k):
                if len(set(weights)) > 1 or weights[0] == 1.0:
                    specs.append("+".join(n if w == 1.0 else f"{n}={w:g}" for n, w in zip(parts, weights)))
    return specs


def normalised(cells: Cells) -> dict[str, np.ndarray]:
    """Each estimator's column through its calibration-sample ``Normalisation``; failed cells NaN."""
    out = {}
    for name in ESTIMATORS:
        norm = Normalisation.from_dict(name, cells.norms[name])
        out[name] = np.array([norm(x) if math.isfinite(x) else math.nan for x in cells.columns[name]])
    return out


def candidates(cells: Cells, select: np.ndarray, parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every fitness as a score column: single, size-aware, composite (parts' normalised sum, for selection)."""
    pool = dict(cells.columns)
    pool["sweet_share"] = cells.columns["sweet"] / cells.weights_counted
    for name in SWEET:
        pool[f"{name} after params"] = size_residual(cells.columns[name], cells.params, select)
    for spec in composite_specs(ESTIMATORS):
        pool[spec] = sum(w * parts[n] for n, w in parse_composite(spec).parts)
    return pool


def library_composite(cells: Cells, spec: str) -> np.ndarray:
    """The composite's score of every cell as ``Composite.combine`` computes it from the part scores."""
    cls = parse_composite(spec)
    composite = cls(parts=[{"name": n, "weight": w, "settings": cells.settings[n], "normalisation": cells.norms[n]}
                           for n, w in cls.parts])
    out = []
    for i in range(len(cells.truth)):
        results = {}
        for name in cls.names:
            x = float(cells.columns[name][i])
            results[name] = EstimatorResult(x, 0.0) if math.isfinite(x) else EstimatorResult(None, 0.0, "failed", "nan")
        score = composite.combine(results, 0.0).score
        out.append(math.nan if score is None else score)
    return np.array(out)


def statistics(pool: dict[str, np.ndarray], cells: Cells, mask: np.ndarray) -> dict[str, dict[str, Any]]:
    return {name: head_metrics(col[mask], cells.truth[mask], cells.params[mask]) for name, col in pool.items()}


def order_by_head(stats: dict[str, dict[str, Any]]) -> list[str]:
    """Candidates best first by the mean of their ranks on CRITERIA; ties: fewer parts, then name."""
    names = list(stats)
    ranks = np.mean([rankdata([_value(stats[n][c]) for n in names]) for c in CRITERIA], axis=0)
    return [names[i] for i in sorted(range(len(names)), key=lambda i: (-ranks[i], names[i].count("+"), names[i]))]


def _value(x: float | None) -> float:
    return -math.inf if x is None or not math.isfinite(x) else x


def evaluate_split(cells: Cells, parts: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """Select on one half, measure the chosen and the reference fitnesses on the other."""
    select = split(cells, seed)
    pool = candidates(cells, select, parts)
    chosen = statistics(pool, cells, select)
    ranked = order_by_head(chosen)
    by_spearman = max(chosen, key=lambda n: _value(chosen[n]["spearman"]))
    return {"select": select, "pool": pool, "chosen": chosen, "ranked": ranked, "by_spearman": by_spearman}


def fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return str(x) if isinstance(x, int) else f"{x:.{digits}f}"


def space_report(cells: Cells, splits: int) -> tuple[list[str], dict[str, Any]]:
    """Tables of one space: split 0 in full, then the chosen fitness over ``splits`` seeded splits."""
    parts = normalised(cells)
    first = evaluate_split(cells, parts, 0)
    report = ~first["select"]
    recommended = next(iter(RECOMMENDED))
    singles = [*ESTIMATORS, "sweet_share", *(f"{n} after params" for n in SWEET)]
    shown = list(dict.fromkeys([*first["ranked"][:SHOWN], first["by_spearman"], recommended, *singles]))
    columns = {n: library_composite(cells, n) if "+" in n else first["pool"][n] for n in shown}
    for n in shown:
        if "+" in n:  # the selection's vectorised sum is the library's composite
            assert np.allclose(columns[n], first["pool"][n], rtol=0, atol=1e-9, equal_nan=True), n
    measured = {n: head_metrics(columns[n][report], cells.truth[report], cells.params[report]) for n in shown}
    place = {n: i + 1 for i, n in enumerate(first["ranked"])}
    lines = [f"## {cells.space}: {cells.note}", "",
             f"Selection half {int(first['select'].sum())} cells, report half {int(report.sum())} cells; "
             f"{len(first['pool'])} candidates. Numbers below are on the **report half**; \"head rank\" is the "
             "candidate's place by the selection objective on the selection half.", "",
             "| fitness | head rank | " + " | ".join(h for _, h in COLUMNS) + " |",
             "|---|--:|" + "--:|" * len(COLUMNS)]
    for n in shown:
        tag = " (selected)" if n == first["ranked"][0] else " (best Spearman on selection)" if n == first[
            "by_spearman"] else " (former recommendation)" if n == recommended else ""
        lines.append(f"| `{n}`{tag} | {place[n]} | " + " | ".join(
            fmt(measured[n][k], 2 if k == "top_ranked_truth" else 3) for k, _ in COLUMNS) + " |")
    best = first["ranked"][0]
    lines += ["", f"Within-size buckets of `{best}` on the report half (quintiles of params, millions):", "",
              "| params | cells | Spearman |", "|---|--:|--:|"]
    lines += [f"| {b['params'][0]:.3f}-{b['params'][1]:.3f} | {b['n']} | {fmt(b['spearman'])} |"
              for b in measured[best]["size_buckets"]]
    repeated = repeated_splits(cells, parts, splits, first, recommended)
    lines += ["", f"Over {splits} seeded splits (seeds 0-{splits - 1}): report-half mean ± standard deviation of "
              "the fitness each rule picks on its selection half.", "",
              "| rule | P@1% | P@5% | top-1 acc. | its rank (median, range) | in-size rho | Spearman | picked |",
              "|---|--:|--:|--:|--:|--:|--:|---|"]
    for rule, rows in repeated.items():
        picked = ", ".join(f"`{n}` x{c}" for n, c in sorted(
            {n: [r["name"] for r in rows].count(n) for n in {r["name"] for r in rows}}.items(), key=lambda kv: -kv[1]))
        ranks = [r["top_ranked_truth_rank"] for r in rows]
        lines.append(f"| {rule} | " + " | ".join(_mean_sd([r[k] for r in rows]) for k in (
            "top1_precision", "top5_precision", "top_ranked_truth")) + f" | {np.median(ranks):g} ({min(ranks)}-"
            f"{max(ranks)}) | " + " | ".join(_mean_sd([r[k] for r in rows]) for k in (
                "size_bucket_spearman", "spearman")) + f" | {picked} |")
    record = {"selected": best, "by_spearman": first["by_spearman"], "report_half": measured,
              "selection_half": {n: first["chosen"][n] for n in shown}, "head_rank": {n: place[n] for n in shown},
              "splits": repeated}
    return lines + [""], record


def repeated_splits(cells: Cells, parts: dict[str, np.ndarray], splits: int, first: dict[str, Any],
                    recommended: str) -> dict[str, list[dict[str, Any]]]:
    """Per split seed: the report-half statistics of what each rule picks."""
    rules: dict[str, list[dict[str, Any]]] = {"head objective": [], "Spearman": [], "sweet_snip (fixed)": [],
                                              f"{recommended} (fixed)": []}
    for seed in range(splits):
        run = first if seed == 0 else evaluate_split(cells, parts, seed)
        report = ~run["select"]
        for rule, name in zip(rules, (run["ranked"][0], run["by_spearman"], "sweet_snip", recommended)):
            m = head_metrics(run["pool"][name][report], cells.truth[report], cells.params[report])
            rules[rule].append({"name": name, **{k: v for k, v in m.items() if k != "size_buckets"}})
    return rules


def _mean_sd(values: Sequence[float]) -> str:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return "-" if not vals else f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else f"{vals[0]:.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--splits", type=int, default=10, help="seeded selection/report splits for the robustness table")
    p.add_argument("--nb201-truth", type=Path, default=SHARED / "benchmarks" / "nb201_accuracy.csv")
    p.add_argument("--darts-table", type=Path, default=SHARED / "benchmarks" / "darts_nb301_cifar10_dev.csv")
    args = p.parse_args()
    lines = ["# A fitness chosen by the head of the ranking", "",
             f"Generated by `benchmarks/head_selection.py` ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC) "
             "from the stored per-cell scores; no cell was re-scored.", ""]
    record = {}
    for load in (load_nb201, load_darts):
        cells = load(args)
        part, record[cells.space] = space_report(cells, args.splits)
        lines += part
        print("\n".join(part), flush=True)
    (HERE / "head_selection.json").write_text(json.dumps(json_safe(record), indent=1, default=float) + "\n")
    md = HERE / "head_selection.md"
    kept = md.read_text().partition(FINDINGS)[2] if md.is_file() else ""
    md.write_text("\n".join(lines) + f"\n{FINDINGS}{kept or chr(10)}")


if __name__ == "__main__":
    main()
