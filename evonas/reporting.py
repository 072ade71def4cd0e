"""``evonas report``: one self-contained HTML page about a run (images embedded, no server).

The page shows the run's settings, the best score over evaluations, the score histogram,
the top cells with their diagrams (and true accuracies with a truth table), the Pareto
front where the run has one, the refined head (``refine.json``) and the trainings under ``train/``. Everything is read from
the run record, so a killed run gets a report too.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import search_spaces
from evonas.drawing import genotype_figure
from evonas.runs import RunRecord, replacing
from evonas.settings import DEFAULT_DATASET
from evonas.training.refine import read_refinement

REPORT = "report.html"
_STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;
font-size:.9em;vertical-align:top}th{background:#f3f3f3}img{max-width:100%}code{font-size:.85em}"""


def _png(fig: Figure) -> str:
    """An ``<img>`` whose PNG is embedded as a data URI."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _curves(history: list[dict[str, Any]], higher_is_better: bool) -> str:
    """Best score so far over evaluations, and the histogram of every successful score."""
    scores = [r["score"] for r in history if r.get("status") == "ok" and isinstance(r.get("score"), (int, float))
              and math.isfinite(r["score"])]
    if not scores:
        return "<p>No successful evaluation yet.</p>"
    best, steps, values = None, [], []
    for step, record in enumerate(history, 1):
        score = record.get("score") if record.get("status") == "ok" else None
        if score is not None and (best is None or (score > best if higher_is_better else score < best)):
            best = score
        if best is not None:
            steps.append(step)
            values.append(best)
    fig = Figure(figsize=(10, 3.2))
    curve, hist = fig.subplots(1, 2)
    curve.plot(steps, values, drawstyle="steps-post")
    curve.set(xlabel="evaluations", ylabel="best score so far", title="best score over evaluations")
    hist.hist(scores, bins=min(40, max(5, len(scores) // 5)))
    hist.set(xlabel="score", ylabel="cells", title=f"scores of {len(scores)} successful evaluations")
    fig.tight_layout()
    return _png(fig)


def _top_cells(space: str, top: list[dict[str, Any]], truth: str | Path | None, dataset: str) -> str:
    accuracies: dict[str, float | None] = {}
    if truth is not None:
        sp = search_spaces.get(space)
        table = sp.benchmark(truth)
        column = sp.truth_column(dataset)
        accuracies = {cell["genotype"]: table.accuracy(cell["genotype"], column) for cell in top}
    rows = []
    for rank, cell in enumerate(top, 1):
        acc = accuracies.get(cell["genotype"])
        rows.append([rank, cell["id"], f"{cell['score']:.6g}",
                     *([f"{acc:.2f}" if acc is not None else "-"] if truth is not None else []),
                     f"<code>{html.escape(cell['genotype'])}</code><br>{_png(genotype_figure(space, cell['genotype']))}"])
    header = ["rank", "id", "score", *(["true accuracy"] if truth is not None else []), "cell"]
    return _table(header, rows)


def _front(front: list[dict[str, Any]]) -> str:
    """The Pareto front's cells and, for the first two numeric objectives, their plot."""
    if not front:
        return ""
    numeric = [k for k, v in front[0].items() if isinstance(v, (int, float)) and k != "id"]
    rows = [[html.escape(str(entry.get(k, ""))) for k in ("id", *numeric, "genotype")] for entry in front]
    section = "<h2>Pareto front</h2>" + _table(["id", *numeric, "genotype"], rows)
    if len(numeric) >= 2:
        fig = Figure(figsize=(5, 4))
        ax = fig.subplots()
        ax.scatter([e[numeric[1]] for e in front], [e[numeric[0]] for e in front])
        ax.set(xlabel=numeric[1], ylabel=numeric[0], title="front")
        section += _png(fig)
    return section


def _trainings(record: RunRecord) -> str:
    results = [json.loads(p.read_text()) for p in sorted(record.train_dir.glob("*/result.json"))]
    if not results:
        return "<p>No training under train/ yet (<code>evonas train RUN_DIR --top K</code>).</p>"
    rows = [[html.escape(Path(r["out_dir"]).name), f"{r['test_accuracy']:.2f}%", f"{r['best_test_accuracy']:.2f}%",
             f"{r['parameters'] / 1e6:.3f}M", r["recipe"]["epochs"], f"{r['wall_seconds']:.0f} s",
             "synthetic" if r.get("synthetic_data") else html.escape(r["dataset"]),
             f"<code>{html.escape(r['genotype'])}</code>"] for r in results]
    return _table(["folder", "test acc", "best acc", "params", "epochs", "time", "data", "genotype"], rows)


def _refinement(record: RunRecord) -> str:
    """The refined head (``refine.json``), when the run was refined."""
    refined = read_refinement(record.path)
    if refined is None:
        return ""
    section = "<h2>Refined head</h2>"
    for number, rnd in enumerate(refined["rounds"]):
        rows = [[c["rank"], f"{c['score']:.6g}", f"{c['accuracy']:.2f}%", f"{c['seconds']:.0f} s",
                 f"<code>{html.escape(c['genotype'])}</code>"] for c in rnd["cells"]]
        section += (f"<p>Round {number}: {len(rnd['cells'])} cells x {rnd['epochs']} epochs</p>"
                    + _table(["search rank", "score", "short-training acc", "time", "genotype"], rows))
    chosen = refined["chosen"]
    return section + (f"<p>Chosen: search rank {chosen['rank']} ({chosen['accuracy']:.2f}% after short training; "
                      f"{refined['training_seconds']:.0f} s of training in all"
                      f"{'' if refined['complete'] else ', unfinished'}).</p>")


def write_report(run_dir: str | Path, out: str | Path | None = None, truth: str | Path | None = None) -> Path:
    """Write the run's HTML report (default ``RUN_DIR/report.html``); returns its path."""
    record = RunRecord.open(run_dir)
    recorded = record.settings()
    search = recorded.search
    summary = record.summary()  # the run's own --top-k
    title = f"evonas run report: {record.path.name}"
    state = "finished" if summary["complete"] else "stopped (resumable)"
    settings = _table(["setting", "value"], [[html.escape(k), html.escape(json.dumps(v))]
                                             for k, v in sorted(recorded.raw["search"].items())])
    estimator = recorded.raw.get("estimator", {})
    page = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(search.space)} / {html.escape(search.estimator)} {html.escape(json.dumps(estimator.get('settings', {})))}, "
        f"{state}: {summary['evaluations']} evaluations, {summary['failed']} failed, "
        f"cache hits {summary['cache_hit_rate']:.0%}, {summary['elapsed']:.1f} s.</p>",
        "<h2>Progress</h2>", _curves(record.read_history(), recorded.higher_is_better),
        f"<h2>Top {len(summary['top'])} cells</h2>",
        _top_cells(search.space, summary["top"], truth, search.dataset or DEFAULT_DATASET),
        _front((record.read_best() or {}).get("front", [])),
        _refinement(record),
        "<h2>Trainings</h2>", _trainings(record),
        "<h2>Settings</h2>", settings,
        "<h2>Versions</h2>", _table(["library", "version"], sorted(recorded.raw.get("versions", {}).items())),
        "</body></html>",
    ]
    path = Path(out) if out is not None else record.path / REPORT
    with replacing(path) as tmp:
        tmp.write_text("\n".join(page))
    return path
