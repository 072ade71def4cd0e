"""Which zero-cost estimator to trust on a space that has no benchmark table: ``evonas trust``.

A plug-in space, or DARTS on the user's own data, has no table of trained accuracies to check an
estimator against. ``trust`` makes a small one: it samples N cells (seeded), trains each briefly
with the space's own recipe (the trainer of ``evonas.training``, in process or as Ray tasks, as
``evonas refine`` does), and correlates every chosen estimator and the params/FLOPs baselines
against those short-training accuracies with the ``evonas.correlating`` machinery. Short training
is itself a proxy, so the answer is a ranking of estimators by how well they predict *it*; with a
real table (``truth``) the same cells are also correlated against the table, which shows how far
the short-training verdict can be believed.

The folder is resumable: ``config.json`` (settings and library versions), ``cells.json`` (the
sampled cells), ``trained.jsonl`` (one line per finished training, appended as it comes, as a
search appends its history), ``train/<cell>-<key hash>/`` (ordinary training folders, so a
half-done training continues from its checkpoint), ``correlate/`` (an ordinary correlate folder
with its score store), ``table/`` (with a truth table: the same scores against it), and the
result, ``trust.json`` and ``trust.md``. A rerun with the same settings trains only what is missing.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import search_spaces
from evonas.correlating import (
    MANIFEST, CorrelateSettings, ScoreStore, cell_params, correlate_into, kendall, load_cells, run_results, spearman,
    write_outputs,
)
from evonas.correlating.runner import EstimatorRun, stored_run
from evonas.correlating.store import Manifest, run_label
from evonas.errors import EvonasError
from evonas.runs import SYNC_INTERVAL_S, HistoryWriter, RecordedRun, RunRecord, library_versions, read_jsonl, write_atomic
from evonas.settings import DEFAULT_BATCH_SIZE, DEFAULT_DATASET, ScoringSettings, SearchSettings, check_executor, load_json
from evonas.training import key_hash
from evonas.training.top import train_candidates
from evonas.training.trainer import TrainProgress
from search_spaces.benchmark import Cell

CONFIG = "config.json"
CELLS = "cells.json"
TRAINED = "trained.jsonl"
TRAIN_DIR = "train"
CORRELATE_DIR = "correlate"
TABLE_DIR = "table"
RESULT = "trust.json"
REPORT = "trust.md"
#: Size baselines every trust run correlates beside the chosen estimators.
BASELINES = ("params", "flops")
MIN_SAMPLE = 3
#: Percentage points above chance accuracy within which a trained cell counts as not having learned yet.
CHANCE_MARGIN = 2.0
#: Settings a rerun may change: they decide where and how fast, not what is measured.
HOW = ("executor", "workers", "address", "device")
CAVEAT = ("short training is itself a proxy: these accuracies come from a few epochs on a subset, so the ranking says "
          "which estimator predicts short training best, not necessarily the fully trained accuracy")


@dataclass(frozen=True)
class TrustSettings:
    """What a trust run measures (everything but ``HOW``), and how it runs."""

    space: str
    estimators: tuple[str, ...]
    sample: int = 20
    epochs: int = 1
    images: int | None = None
    test_images: int | None = None
    train_batch_size: int | None = None
    seed: int = 0
    dataset: str = DEFAULT_DATASET
    data_dir: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    interval: tuple[float, float] | None = None
    truth: str | None = None
    truth_column: str = "cifar10_test"
    executor: str = "local"
    workers: int | None = None
    address: str | None = None
    device: str | None = None

    @property
    def all_estimators(self) -> tuple[str, ...]:
        """The chosen estimators, then the size baselines not already among them."""
        return tuple(dict.fromkeys((*self.estimators, *BASELINES)))

    def measured(self) -> dict[str, Any]:
        """The settings a rerun must repeat (the data folder may move, as a training's may)."""
        data = asdict(self)
        for name in (*HOW, "data_dir"):
            data.pop(name)
        data["estimators"] = list(self.estimators)
        data["interval"] = list(self.interval) if self.interval else None
        return data

    def recipe_overrides(self) -> dict[str, Any]:
        """What the short trainings change in the space's recipe."""
        given = {"epochs": self.epochs, "train_images": self.images, "test_images": self.test_images,
                 "batch_size": self.train_batch_size, "seed": self.seed, "dataset": self.dataset,
                 "data_dir": self.data_dir}
        return {k: v for k, v in given.items() if v is not None}


@dataclass
class TrustProgress:
    """What a caller hears: ``trained(done, total, line, eta_seconds)`` per finished training, ``note(text)``
    for phases, ``scored(name, k)`` and ``calibrating(done, total)`` while estimators score."""

    trained: Callable[[int, int, dict[str, Any], float | None], None] = lambda done, total, line, eta: None
    note: Callable[[str], None] = lambda text: None
    scored: Callable[[str, int], None] | None = None
    calibrating: Callable[[int, int], None] | None = None
    training: TrainProgress | None = None  # per-epoch progress of in-process trainings


# ---- the folder --------------------------------------------------------------------------------
class _CellsRecord(RunRecord):
    """What ``train_candidates`` reads of a run record (the space and the data); a trust folder has no search."""

    def __init__(self, path: Path, settings: TrustSettings) -> None:
        super().__init__(path)
        search = SearchSettings(space=settings.space, dataset=settings.dataset, data_dir=settings.data_dir)
        self._recorded = RecordedRun(search, ScoringSettings(settings.space, BASELINES[0]), True, {})

    def settings(self) -> RecordedRun:
        return self._recorded


def check_settings(settings: TrustSettings) -> None:
    """Bad input as one line, before anything is sampled or trained."""
    search_spaces.get(settings.space)
    if settings.sample < MIN_SAMPLE:
        raise EvonasError(f"--sample must be at least {MIN_SAMPLE} (a rank correlation needs cells), not {settings.sample}")
    for flag, value in (("--epochs", settings.epochs), ("--images", settings.images),
                        ("--test-images", settings.test_images), ("--train-batch-size", settings.train_batch_size)):
        if value is not None and value < 1:
            raise EvonasError(f"{flag} must be at least 1, not {value}")
    check_executor(settings.executor, settings.workers, None, settings.address)


def _open_folder(out: Path, settings: TrustSettings) -> bool:
    """Create ``out`` or check that it holds a trust run of the same settings; True when it already did."""
    config = out / CONFIG
    if config.is_file():
        found = load_json(config).get("settings")
        if not isinstance(found, dict):
            raise EvonasError(f"{config} holds no trust settings; the folder is corrupt (delete it or pick another --out)")
        wanted = settings.measured()
        changed = [f"{k} {_show(found.get(k))} (not {_show(v)})" for k, v in wanted.items() if found.get(k) != v]
        if changed:
            raise EvonasError(f"cannot continue {out}: it was made with {'; '.join(changed)}; "
                              "give the same flags or another --out")
        return True
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EvonasError(f"{out} exists and is not an `evonas trust` folder (no {CONFIG}); pick another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvonasError(f"cannot create output folder {out}: {exc.strerror}") from None
    write_atomic(config, {"settings": settings.measured(), "how": {k: getattr(settings, k) for k in HOW},
                          "data_dir": settings.data_dir, "versions": library_versions(extra=("scipy",))})
    return False


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def sample_space_cells(space: str, n: int, seed: int) -> list[str]:
    """``n`` cells of ``space`` distinct by canonical key, drawn with ``random.Random(seed)``."""
    impl = search_spaces.get(space)
    rng = random.Random(seed)
    seen: dict[str, str] = {}
    for _ in range(100 * n):
        graph = impl.sample(rng)
        seen.setdefault(impl.canonical_key(graph), impl.to_str(graph))
        if len(seen) == n:
            return list(seen.values())
    raise EvonasError(f"--sample {n}: {space} gave only {len(seen)} distinct cells in {100 * n} draws; sample fewer")


def _sampled_cells(out: Path, settings: TrustSettings, existed: bool) -> list[dict[str, Any]]:
    """The run's cells (``cell``, ``genotype``, ``key``, ``table``): read back, or drawn and recorded."""
    path = out / CELLS
    if existed and path.is_file():
        cells = load_json(path).get("cells")
        if not isinstance(cells, list) or len(cells) != settings.sample or not all(
                isinstance(c, dict) and {"cell", "genotype", "key", "table"} <= set(c) for c in cells):
            raise EvonasError(f"{path} is corrupt (expected {settings.sample} cells); delete {out} or pick another --out")
        return cells
    impl = search_spaces.get(settings.space)
    if settings.truth is not None:  # the draw `evonas correlate --truth T --sample N --seed S` makes
        table = load_cells(settings.space, truth=settings.truth, sample=settings.sample, seed=settings.seed,
                           column=settings.truth_column)
        drawn = [(c.arch, c.truth) for c in table]
    else:
        drawn = [(g, None) for g in sample_space_cells(settings.space, settings.sample, settings.seed)]
    cells = [{"cell": i, "genotype": g, "key": impl.str_key(g), "table": t} for i, (g, t) in enumerate(drawn)]
    write_atomic(path, {"cells": cells})
    return cells


def _trained_lines(out: Path, cells: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Finished trainings of ``trained.jsonl`` by cell (a torn last line is cut off; anything else odd is corrupt)."""
    path = out / TRAINED
    found: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(read_jsonl(path, repair=True), start=1):
        cell = line.get("cell") if isinstance(line, dict) else None
        if not isinstance(cell, int) or not 0 <= cell < len(cells) or line.get("genotype") != cells[cell]["genotype"] \
                or not isinstance(line.get("accuracy"), (int, float)):
            raise EvonasError(f"{path} line {number} does not belong to this run's cells; the folder is corrupt")
        found.setdefault(cell, line)
    return found


# ---- training -----------------------------------------------------------------------------------
def train_missing(out: Path, settings: TrustSettings, cells: Sequence[dict[str, Any]],
                  progress: TrustProgress) -> dict[int, dict[str, Any]]:
    """Train every cell ``trained.jsonl`` lacks (half-done ones continue); every cell's line by cell."""
    done = _trained_lines(out, cells)
    todo = [c for c in cells if c["cell"] not in done]
    if not todo:
        return done
    progress.note(f"training {len(todo)} of {len(cells)} cells ({len(done)} already trained), {settings.epochs} "
                  f"epoch(s) each on {settings.images or 'all'} images")
    candidates = [{"rank": c["cell"], "genotype": c["genotype"], "key": c["key"], "score": None} for c in todo]
    writer = HistoryWriter(out / TRAINED, SYNC_INTERVAL_S)
    start, finished = time.monotonic(), 0

    def keep(result: dict[str, Any]) -> None:
        nonlocal finished
        cell = int(result["rank"])
        line = {"cell": cell, "genotype": cells[cell]["genotype"], "key": cells[cell]["key"], "status": "ok",
                "accuracy": float(result["test_accuracy"]), "best_accuracy": float(result["best_test_accuracy"]),
                "seconds": float(result["wall_seconds"]), "train_images": result.get("train_images"),
                "test_images": result.get("test_images"), "synthetic": bool(result.get("synthetic_data")),
                "out_dir": str(result["out_dir"])}
        writer.append(json.dumps(line, sort_keys=True) + "\n")
        done[cell] = line
        finished += 1
        left = len(todo) - finished
        eta = (time.monotonic() - start) / finished * left if left else 0.0
        progress.trained(len(done), len(cells), line, eta)

    try:
        train_candidates(_CellsRecord(out, settings), candidates, out / TRAIN_DIR, settings.recipe_overrides(),
                         resume=True, workers=settings.workers if settings.executor == "ray" else 1,
                         address=settings.address, device=settings.device, progress=progress.training,
                         on_result=keep)
    finally:
        writer.close()
    return done


def train_folder(out: Path, cell: dict[str, Any]) -> Path:
    """Where cell ``cell`` trains (the naming of ``train_candidates``: rank, then key hash)."""
    return out / TRAIN_DIR / f"{cell['cell']}-{key_hash(cell['key'])}"


# ---- judging ------------------------------------------------------------------------------------
def spearman_interval(rho: float, n: int) -> tuple[float, float]:
    """An approximate 95% interval of a Spearman rho over ``n`` cells (Fisher z, standard error sqrt(1.06/(n-3)))."""
    if not math.isfinite(rho) or n <= 3:
        return math.nan, math.nan
    z, half = math.atanh(max(min(rho, 0.999999), -0.999999)), 1.96 * math.sqrt(1.06 / (n - 3))
    return math.tanh(z - half), math.tanh(z + half)


def rank_estimators(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Estimators best first by Spearman, then Kendall; undefined values last. On a full tie a size baseline
    goes first (an estimator must beat it to be worth its cost), then names in order."""
    def order(name: str) -> tuple[float, float, bool, str]:
        res = results[name]
        rho, tau = (res.get(k) for k in ("spearman", "kendall"))
        finite = lambda v: v is not None and math.isfinite(v)  # noqa: E731
        return (-rho if finite(rho) else math.inf, -tau if finite(tau) else math.inf, name not in BASELINES, name)

    rows = []
    for place, name in enumerate(sorted(results, key=order), start=1):
        res = results[name]
        rows.append({"place": place, "estimator": name, "baseline": name in BASELINES,
                     **{k: res.get(k) for k in ("spearman", "kendall", "top10_precision", "top_ranked_truth",
                                                  "top_ranked_truth_rank", "scored", "n", "failed", "seconds_per_cell")}})
    return rows


def recommend(ranking: Sequence[dict[str, Any]], n: int, truth_name: str) -> str:
    """One line: the estimator to trust, its Spearman against ``truth_name`` with an interval, and who is close."""
    defined = [r for r in ranking if r["spearman"] is not None and math.isfinite(r["spearman"])]
    if not defined:
        return f"trust none: no estimator has a defined Spearman against {truth_name} (are all accuracies equal?)"
    best = defined[0]
    if best["spearman"] <= 0:
        hint = ("; the short training is probably too short to rank these cells: train longer or on more images "
                "(--epochs, --images)") if truth_name == "short training" else ""
        return (f"trust none: no estimator ranks the cells as {truth_name} does (best {best['estimator']}, Spearman "
                f"{best['spearman']:.2f} on {n} cells){hint}")
    lo, hi = spearman_interval(best["spearman"], n)
    spread = f" (95% ~[{lo:.2f}, {hi:.2f}])" if math.isfinite(lo) else ""
    size = [r for r in defined if r["baseline"]]
    versus = ", ".join(f"{r['estimator']} {r['spearman']:.2f}" for r in size if r is not best)
    if best["baseline"]:
        line = (f"trust {best['estimator']}: no zero-cost estimator beats the {best['estimator']} baseline "
                f"(Spearman {best['spearman']:.2f}{spread.replace(' (', ', ').rstrip(')')}) against {truth_name} on {n} cells")
    else:
        line = (f"trust {best['estimator']}: Spearman {best['spearman']:.2f}{spread} against {truth_name} on {n} cells"
                + (f", baselines {versus}" if versus else ""))
    close = [r["estimator"] for r in defined[1:] if math.isfinite(lo) and r["spearman"] >= lo]
    if close:
        line += f"; not clearly ahead of {', '.join(close)} at this sample size"
    if math.isfinite(lo) and lo <= 0:
        line += "; its interval includes 0: sample more cells"
    return line


def at_chance(accuracies: Sequence[float], num_classes: int | None) -> int:
    """How many short-trained cells are within ``CHANCE_MARGIN`` points of chance accuracy (0 without a class count)."""
    return sum(acc <= 100.0 / num_classes + CHANCE_MARGIN for acc in accuracies) if num_classes else 0


def chance_warning(accuracies: Sequence[float], num_classes: int | None) -> str | None:
    """A warning when short training left cells at chance accuracy: their order is noise, not quality."""
    stuck = at_chance(accuracies, num_classes)
    chance = 100.0 / num_classes if num_classes else math.nan
    if not stuck:
        return None
    return (f"{stuck} of {len(accuracies)} cells are within {CHANCE_MARGIN:g} points of chance ({chance:.1f}%) after "
            "the short training, so it cannot rank them; train longer or on more images (--epochs, --images)")


def _runs(folder: Path, settings: TrustSettings, cells: Sequence[Cell]) -> list[EstimatorRun]:
    """Every estimator's run over ``cells`` read back from the correlate folder's store (nothing is scored)."""
    manifest = Manifest.read(folder)
    store = ScoreStore.merged([folder])
    params = cell_params(settings.space, cells, settings.dataset)
    recorded = manifest.data["runs"]
    return [stored_run(store, recorded[run_label(name, settings.seed)]["key"], name, settings.seed,
                       recorded[run_label(name, settings.seed)]["settings"], range(len(cells)), params)
            for name in settings.all_estimators]


def _versus_table(out: Path, settings: TrustSettings, cells: Sequence[dict[str, Any]], short: Sequence[float],
                  short_ranking: Sequence[dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
    """The same scores against the table's accuracies: both rankings side by side and how they agree."""
    table_cells = [Cell(c["genotype"], float(c["table"])) for c in cells]
    runs = _runs(out / CORRELATE_DIR, settings, table_cells)
    write_outputs(out / TABLE_DIR, table_cells, runs, {**record, "truth_is": f"{settings.truth} {settings.truth_column}"})
    table_ranking = rank_estimators(run_results(table_cells, runs))
    by_name = {r["estimator"]: r for r in table_ranking}
    names = [r["estimator"] for r in short_ranking]
    short_rho = [_finite(r["spearman"]) for r in short_ranking]
    table_rho = [_finite(by_name[n]["spearman"]) for n in names]
    accuracies = [c["table"] for c in cells]
    return {
        "table": settings.truth, "column": settings.truth_column, "ranking": table_ranking,
        "recommendation": recommend(table_ranking, len(cells), "the table"),
        "side_by_side": [{"estimator": n, "short_place": r["place"], "short_spearman": r["spearman"],
                          "table_place": by_name[n]["place"], "table_spearman": by_name[n]["spearman"]}
                         for n, r in zip(names, short_ranking)],
        "rankings_spearman": spearman(short_rho, table_rho) if len(names) >= 2 else math.nan,
        "short_vs_table_spearman": spearman(list(short), accuracies),
        "short_vs_table_kendall": kendall(list(short), accuracies),
        "same_choice": short_ranking[0]["estimator"] == table_ranking[0]["estimator"],
    }


def _finite(value: float | None) -> float:
    return math.nan if value is None else float(value)


# ---- the whole run ------------------------------------------------------------------------------
def trust(settings: TrustSettings, out: str | Path, progress: TrustProgress | None = None) -> dict[str, Any]:
    """Sample, train briefly (what is missing), correlate every estimator against it; ``trust.json``'s content."""
    progress = progress or TrustProgress()
    check_settings(settings)
    out = Path(out)
    existed = _open_folder(out, settings)
    cells = _sampled_cells(out, settings, existed)
    lines = train_missing(out, settings, cells, progress)
    short = [lines[c["cell"]]["accuracy"] for c in cells]
    short_cells = [Cell(c["genotype"], acc) for c, acc in zip(cells, short)]
    correlate_settings = CorrelateSettings(space=settings.space, estimators=settings.all_estimators, seed=settings.seed,
                                           dataset=settings.dataset, data_dir=settings.data_dir,
                                           batch_size=settings.batch_size, interval=settings.interval)
    record = {**asdict(correlate_settings), "n": len(cells), "truth_is": f"short training ({settings.epochs} epoch(s), "
              f"{settings.images or 'all'} images)", "executor": settings.executor, "workers": settings.workers}
    progress.note(f"scoring {len(cells)} cells with {', '.join(settings.all_estimators)}")
    summary = correlate_into(out / CORRELATE_DIR, short_cells, correlate_settings, record,
                             resume=(out / CORRELATE_DIR / MANIFEST).is_file(), progress=progress.scored,
                             executor=settings.executor, workers=settings.workers,
                             calibration_progress=progress.calibrating)
    assert summary is not None  # one shard: always a summary
    ranking = rank_estimators(summary["results"])
    classes = summary["settings"].get("data", {}).get("num_classes")
    verdict = recommend(ranking, len(cells), "short training")
    if 2 * at_chance(short, classes) > len(cells):  # most cells learned nothing yet: any ranking of them is noise
        verdict = f"trust none yet: most cells are still at chance accuracy (the ranking would have said: {verdict})"
    result: dict[str, Any] = {
        "settings": {**settings.measured(), "data_dir": settings.data_dir}, "versions": library_versions(extra=("scipy",)),
        "cells": [{**c, "accuracy": lines[c["cell"]]["accuracy"], "seconds": lines[c["cell"]]["seconds"]}
                  for c in cells],
        "training_seconds": sum(lines[c["cell"]]["seconds"] for c in cells),
        "synthetic_data": any(lines[c["cell"]].get("synthetic") for c in cells),
        "accuracy_range": [min(short), max(short)],
        "ranking": ranking, "recommendation": verdict, "caveat": CAVEAT,
        "warning": chance_warning(short, classes),
        "intervals": {n: r["settings"].get("interval") for n, r in summary["results"].items()
                      if r["settings"].get("interval")},
        "versus_table": None,
    }
    if settings.truth is not None:
        result["versus_table"] = _versus_table(out, settings, cells, short, ranking, record)
    write_atomic(out / RESULT, _json_safe(result))
    (out / REPORT).write_text(markdown(result))
    return result


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def read_result(out: str | Path) -> dict[str, Any]:
    """A finished folder's ``trust.json``."""
    return load_json(Path(out) / RESULT)


# ---- the report ----------------------------------------------------------------------------------
def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """``trust.md``: settings, the ranked table, the recommendation, the caveat, and the table comparison."""
    s = result["settings"]
    lo, hi = result["accuracy_range"]
    lines = [f"# evonas trust: {s['space']}", "",
             f"{len(result['cells'])} cells (seed {s['seed']}), each trained {s['epochs']} epoch(s) on "
             f"{s['images'] or 'all'} {s['dataset']} training images with the space's recipe; short-training test "
             f"accuracy {lo:.2f}-{hi:.2f}%, {result['training_seconds']:.0f} s of training in all.", ""]
    if result.get("synthetic_data"):
        lines += ["**Trained on SYNTHETIC data: these numbers mean nothing.**", ""]
    lines += ["| place | estimator | Spearman | Kendall | P@10% | top-ranked acc. | failed | s/cell |",
              "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["ranking"]:
        name = f"{r['estimator']} (baseline)" if r["baseline"] else r["estimator"]
        lines.append(f"| {r['place']} | {name} | {_num(r['spearman'])} | {_num(r['kendall'])} | "
                     f"{_num(r['top10_precision'], 2)} | {_num(r['top_ranked_truth'], 2)} | {r['failed']} | "
                     f"{_num(r['seconds_per_cell'], 2)} |")
    lines += ["", f"**{result['recommendation']}.**", ""]
    if result.get("warning"):
        lines += [f"Warning: {result['warning']}.", ""]
    lines += [f"Caveat: {result['caveat']}.", ""]
    versus = result.get("versus_table")
    if versus:
        lines += [f"## Against the table ({versus['table']}, {versus['column']})", "",
                  "| estimator | place (short training) | Spearman (short training) | place (table) | Spearman (table) |",
                  "|---|---:|---:|---:|---:|"]
        for r in versus["side_by_side"]:
            lines.append(f"| {r['estimator']} | {r['short_place']} | {_num(r['short_spearman'])} | "
                         f"{r['table_place']} | {_num(r['table_spearman'])} |")
        lines += ["", f"- Spearman between the two estimator rankings (their Spearman values): "
                      f"{_num(versus['rankings_spearman'])}",
                  f"- Spearman of short-training accuracy against the table: {_num(versus['short_vs_table_spearman'])} "
                  f"(Kendall {_num(versus['short_vs_table_kendall'])})",
                  f"- by the table: {versus['recommendation']}"
                  + (" (the same choice)" if versus["same_choice"] else " (a different choice)"), ""]
    return "\n".join(lines)


__all__ = [
    "BASELINES", "CAVEAT", "TrustProgress", "TrustSettings", "chance_warning", "check_settings", "markdown", "rank_estimators",
    "read_result", "recommend", "sample_space_cells", "spearman_interval", "train_folder", "train_missing", "trust",
]
