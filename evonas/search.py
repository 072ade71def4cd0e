"""The search driver: config -> (space, estimator, executor) -> aging evolution -> run folder.

``start_search`` and ``resume_search`` both return the run folder's path, so a caller
(the CLI, or a later ``--train-top K`` step) can go on from the finished run.

The loop is asynchronous steady-state: every worker gets a job, and whenever a result
comes back it is recorded and the next child is submitted. A child whose canonical key
was already scored is answered from the score cache at once (it still counts as an
evaluation). Each finished evaluation is appended to ``history.jsonl`` *before* the
evolution state changes, and the checkpoint says how many history lines it covers, so a
resume (even after kill -9) replays exactly the lines written after the checkpoint:
no finished evaluation is lost or repeated, and jobs still in flight are submitted again.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import estimators
import search_spaces
from evonas.cache import ScoreCache, scoring_fingerprint
from evonas.config import SearchConfig
from evonas.errors import EvonasError
from evonas.evolution import AgingEvolution, Proposal
from evonas.runs import Board, RunFolder, default_run_name, library_versions
from evonas.scoring import ScoringConfig, stable_seed

CHECKPOINT_FORMAT = 1
#: Settings a resume may change: they decide how long or where the run goes on, not what it computes.
RESUME_OVERRIDES = ("budget", "time_limit", "executor", "workers", "gpus_per_worker", "address")

ExecutorFactory = Callable[[ScoringConfig, SearchConfig], Any]


@dataclass
class Progress:
    """What the progress callback sees after every evaluation."""

    evaluations: int
    budget: int | None
    best: float | None
    rate: float
    cache_hit_rate: float
    failed: int
    elapsed: float


ProgressCallback = Callable[[Progress], None]


def default_executor(scoring: ScoringConfig, config: SearchConfig) -> Any:
    """The executor the config asks for (local in-process, or a Ray actor pool)."""
    from evonas.executors import make_executor

    return make_executor(
        scoring, kind=config.executor, workers=config.workers,
        gpus_per_worker=config.gpus_per_worker, address=config.address,
    )


def scoring_config(config: SearchConfig, interval_progress: Callable[[int, int], None] | None = None) -> ScoringConfig:
    """The resolved ScoringConfig: estimator settings with the (calibrated) interval, build options."""
    space = search_spaces.get(config.space)
    settings = dict(config.estimator_settings)
    if estimator_class(config.estimator).needs_calibration:
        from evonas.calibration import resolve_interval

        settings["interval"] = list(resolve_interval(
            config.space, config.dataset, config.data_dir, config.batch_size, config.seed,
            override=config.interval, progress=interval_progress,
        ))
    elif config.interval is not None:
        raise EvonasError(f"--interval only applies to the Sweetimator family, not {config.estimator!r}")
    estimator = estimators.get(config.estimator, **settings)
    build = space.proxy_options() if config.build_options is None else config.build_options
    return ScoringConfig(
        space=config.space, estimator=config.estimator, estimator_settings={**settings, **estimator.settings()},
        dataset=config.dataset, data_dir=config.data_dir, batch_size=config.batch_size,
        batch_policy=config.batch_policy, seed=config.seed, build_options=dict(build),
    )


def estimator_class(name: str) -> type[estimators.Estimator]:
    """The registered estimator class (UnknownEstimatorError naming the choices otherwise)."""
    cls = estimators.available().get(name)
    if cls is None:
        estimators.get(name)  # raises with the list of registered names
    return cls


def _make_evolution(config: SearchConfig) -> AgingEvolution:
    return AgingEvolution(
        search_spaces.get(config.space), config.population, config.sample, config.seed,
        higher_is_better=estimator_class(config.estimator).higher_is_better, warmup=config.warmup,
    )


def start_search(
    config: SearchConfig,
    run_dir: str | Path | None = None,
    runs_root: str | Path = "runs",
    executor_factory: ExecutorFactory = default_executor,
    progress: ProgressCallback | None = None,
    interval_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Run a new search to its budget; returns the run folder."""
    config = config.resolved()
    scoring = scoring_config(config, interval_progress)
    evolution = _make_evolution(config)
    est_cls = estimator_class(config.estimator)
    executor = executor_factory(scoring, config)  # fails early (data, Ray address) before any folder exists
    try:
        folder = RunFolder.create(run_dir or Path(runs_root) / default_run_name(config.space, config.estimator))
        folder.write_config({
            "search": config.to_dict(),
            "scoring": scoring.to_dict(),
            "estimator": {
                "name": config.estimator, "settings": scoring.estimator_settings,
                "higher_is_better": est_cls.higher_is_better, "needs_calibration": est_cls.needs_calibration,
            },
            "cache_fingerprint": scoring_fingerprint(scoring),
            "versions": library_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        driver = _Driver(folder, config, scoring, evolution, lambda *_: executor, progress)
        driver.checkpoint()
    except BaseException:
        executor.close()
        raise
    return driver.run()


def resume_search(
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    executor_factory: ExecutorFactory = default_executor,
    progress: ProgressCallback | None = None,
) -> Path:
    """Continue a stopped or killed run from its checkpoint plus the history written after it."""
    folder = RunFolder.open(run_dir)
    recorded = folder.read_config()
    try:
        config = SearchConfig.from_dict(recorded["search"])
        scoring = ScoringConfig(**recorded["scoring"])
    except (KeyError, TypeError) as exc:
        raise EvonasError(f"{folder.config_path} is not an evonas search config ({exc})") from None
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(changes) - set(RESUME_OVERRIDES))
    if unknown:
        raise EvonasError(f"a resumed run keeps its settings; only {', '.join(RESUME_OVERRIDES)} may change, "
                          f"not {', '.join(unknown)}")
    if {"workers", "address"} & changes.keys() and "executor" not in changes:
        changes["executor"] = None  # re-derive local/ray from the new worker settings
    config = replace(config, **changes).resolved()
    checkpoint = folder.read_checkpoint()
    history = folder.read_history(repair=True)
    evolution = _make_evolution(config)
    try:
        evolution.load_state_dict(checkpoint["evolution"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EvonasError(f"checkpoint {folder.checkpoint_path} does not fit this run ({exc}); "
                          "the run cannot be resumed") from None
    covered = int(checkpoint["evaluations"])
    if config.budget is not None and config.budget < len(history):
        raise EvonasError(f"this run already has {len(history)} evaluations; a --budget below that cannot apply")
    if len(history) < covered:
        raise EvonasError(f"{folder.history_path} has {len(history)} evaluations but the checkpoint covers "
                          f"{covered}; the history was truncated and the run cannot be resumed")
    driver = _Driver(folder, config, scoring, evolution, executor_factory, progress, history, checkpoint)
    return driver.run()


class _Driver:
    """One session of the loop over a run folder (a fresh start or a resume)."""

    def __init__(
        self,
        folder: RunFolder,
        config: SearchConfig,
        scoring: ScoringConfig,
        evolution: AgingEvolution,
        executor_factory: ExecutorFactory,
        progress: ProgressCallback | None,
        history: list[dict[str, Any]] | None = None,
        checkpoint: dict[str, Any] | None = None,
    ) -> None:
        self.folder, self.config, self.scoring, self.evolution = folder, config, scoring, evolution
        self.executor_factory = executor_factory
        self.executor: Any = None
        self.progress = progress
        self.cache = ScoreCache(scoring)
        self.pending: dict[int, Proposal] = {}
        self.resubmit: list[tuple[int, Proposal]] = []
        self.done = self.failed = self.hits = 0
        self.next_id = 0
        self.elapsed_before = 0.0
        if checkpoint is not None:
            self._restore(history or [], checkpoint)
        self.board = Board(folder, purge_step=self.done if checkpoint is not None else None)
        self.session_start = time.monotonic()
        self.session_done = 0

    # ---- resume -------------------------------------------------------------------
    def _restore(self, history: list[dict[str, Any]], checkpoint: dict[str, Any]) -> None:
        covered = int(checkpoint["evaluations"])
        for rec in history[covered:]:
            self.evolution.tell(rec["id"], rec["genotype"], rec["key"], rec["score"] if rec["status"] == "ok" else None)
        if len(history) > covered:
            # The draws made after the checkpoint cannot be replayed; continue from a stream
            # that is still a pure function of the run seed and the evaluations done.
            self.evolution.rng.seed(stable_seed(self.config.seed, "resume", len(history)))
        self.cache.fill(history)
        self.done = len(history)
        self.failed = sum(rec["status"] != "ok" for rec in history)
        self.hits = sum(bool(rec.get("cache_hit")) for rec in history)
        finished = {rec["id"] for rec in history}
        self.next_id = max([int(checkpoint["next_id"]), *(i + 1 for i in finished)])
        self.resubmit = [(int(i), Proposal(**p)) for i, p in sorted(checkpoint["pending"].items(), key=lambda kv: int(kv[0]))
                         if int(i) not in finished]
        self.elapsed_before = max([float(checkpoint.get("elapsed", 0.0)), *(rec.get("t", 0.0) for rec in history[-1:])])

    # ---- the loop -----------------------------------------------------------------
    def run(self) -> Path:
        """Drive the search to its budget; on Ctrl-C (or any error) checkpoint first, then re-raise."""
        try:
            if self._may_submit():  # a resumed run that already reached its budget needs no workers
                self.executor = self.executor_factory(self.scoring, self.config)
                with self.executor:
                    for job_id, proposal in self.resubmit:
                        if self._may_submit():
                            self._submit(job_id, proposal)
                    self._fill()
                    while self.executor.pending():
                        for result in self.executor.wait():
                            self._finish(result)
                        self._fill()
        except BaseException:  # Ctrl-C above all: save what is done, then stop as asked
            self.checkpoint()
            self.finish(complete=False)
            raise
        self.checkpoint()
        self.finish(complete=True)
        return self.folder.path

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.session_start

    def _may_submit(self) -> bool:
        cfg = self.config
        if cfg.budget is not None and self.done + len(self.pending) >= cfg.budget:
            return False
        return cfg.time_limit is None or self.elapsed() < cfg.time_limit

    def _fill(self) -> None:
        """Give every idle worker a child; cached children are answered on the spot."""
        while self.executor.pending() < self.executor.num_workers and self._may_submit():
            proposal = self.evolution.propose()
            job_id, self.next_id = self.next_id, self.next_id + 1
            cached = self.cache.get(proposal.key)
            if cached is None:
                self._submit(job_id, proposal)
            else:
                self._record(job_id, proposal, cached, 0.0, "cache", "ok", None, cache_hit=True)

    def _submit(self, job_id: int, proposal: Proposal) -> None:
        self.pending[job_id] = proposal
        self.executor.submit(job_id, proposal.genotype)

    def _finish(self, result: Any) -> None:
        proposal = self.pending.pop(result.job_id, None)
        if proposal is None:
            return  # not ours (or already recorded): never count an evaluation twice
        status, score, error = result.status, result.score, result.error
        if status == "ok" and (score is None or not math.isfinite(score)):
            status, score, error = "failed", None, f"non-finite score ({score})"
        self._record(result.job_id, proposal, score if status == "ok" else None, result.seconds,
                     result.worker, status, error, cache_hit=False)

    def _record(self, job_id: int, proposal: Proposal, score: float | None, seconds: float, worker: str,
                status: str, error: str | None, cache_hit: bool) -> None:
        """History line first (durable), then evolution, cache, counters, TensorBoard, progress."""
        record = {
            "id": job_id, "genotype": proposal.genotype, "key": proposal.key, "parent": proposal.parent,
            "score": score, "seconds": round(seconds, 6), "worker": worker, "status": status,
            "cache_hit": cache_hit, "error": error, "t": round(self.elapsed(), 3),
        }
        self.folder.append_history(record)
        best_before = self.evolution.best
        member = self.evolution.tell(job_id, proposal.genotype, proposal.key, score)
        if status == "ok":
            self.cache.put(proposal.key, score)
        else:
            self.failed += 1
        self.done += 1
        self.session_done += 1
        self.hits += cache_hit
        stats = self.evolution.logbook[-1] if len(self.evolution.logbook) else None
        best = self.evolution.best
        self.board.step(self.done, stats, best.score if best else None, self.rate(), self.hits / self.done)
        if member is not None and best is not None and best is not best_before:
            self.board.best(self.done, best.genotype, best.score)
        if self.done % self.config.checkpoint_every == 0:
            self.checkpoint()
        if self.progress is not None:
            self.progress(Progress(self.done, self.config.budget, best.score if best else None, self.rate(),
                                   self.hits / self.done, self.failed, self.elapsed()))

    def rate(self) -> float:
        """Evaluations per second in this session."""
        seconds = time.monotonic() - self.session_start
        return self.session_done / seconds if seconds > 0 else 0.0

    # ---- persistence --------------------------------------------------------------
    def checkpoint(self) -> None:
        """Atomically save the state covering every history line written so far."""
        self.folder.write_checkpoint({
            "format": CHECKPOINT_FORMAT,
            "evaluations": self.done,
            "next_id": self.next_id,
            "pending": {str(i): p.to_dict() for i, p in self.pending.items()},
            "elapsed": self.elapsed(),
            "evolution": self.evolution.state_dict(),
        })
        self.board.histogram(self.done, (ind.score for ind in self.evolution.population))
        self.folder.write_best(self.summary(complete=False))

    def summary(self, complete: bool) -> dict[str, Any]:
        best = self.evolution.best
        return {
            "complete": complete,
            "evaluations": self.done,
            "budget": self.config.budget,
            "failed": self.failed,
            "cache_hits": self.hits,
            "cache_hit_rate": self.hits / self.done if self.done else 0.0,
            "elapsed": self.elapsed(),
            "best": best.to_dict() if best else None,
            "top": [ind.to_dict() for ind in self.evolution.top(self.config.top_k)],
        }

    def finish(self, complete: bool) -> None:
        """best.json, hparams and closing the files; runs on a normal end and on Ctrl-C."""
        summary = self.summary(complete)
        self.folder.write_best(summary)
        if complete:
            cfg = self.config
            hparams = {"space": cfg.space, "estimator": cfg.estimator, "population": cfg.population,
                       "sample": cfg.sample, "budget": cfg.budget or 0, "seed": cfg.seed,
                       "batch_policy": cfg.batch_policy, "warmup": cfg.warmup}
            metrics = {"hparam/best_score": summary["best"]["score"] if summary["best"] else float("nan"),
                       "hparam/cache_hit_rate": summary["cache_hit_rate"]}
            self.board.hparams(hparams, metrics)
        self.board.close()
        self.folder.close()


# ---- reading a run back (evonas show, the end-of-search table) ------------------------
#: The NB-201 benchmark table's accuracy column for each dataset.
TRUTH_COLUMNS = {"cifar10": "cifar10_test", "cifar100": "cifar100_test", "imagenet16-120": "imagenet16_test"}


def top_records(history: list[dict[str, Any]], k: int, higher_is_better: bool = True) -> list[dict[str, Any]]:
    """The best ``k`` successful evaluations with distinct canonical keys, best first (earliest wins ties)."""
    ok = [r for r in history if r["status"] == "ok"]
    ranked = sorted(ok, key=lambda r: -r["score"] if higher_is_better else r["score"])
    seen: set[str] = set()
    top = []
    for rec in ranked:
        if rec["key"] not in seen:
            seen.add(rec["key"])
            top.append(rec)
        if len(top) == k:
            break
    return top


def run_summary(run_dir: str | Path, top_k: int | None = None) -> dict[str, Any]:
    """Everything ``evonas show`` prints about a run, finished or killed, read from its files."""
    folder = RunFolder.open(run_dir)
    recorded = folder.read_config()
    search, estimator = recorded.get("search", {}), recorded.get("estimator", {})
    history = folder.read_history()
    done = len(history)
    budget = search.get("budget")
    elapsed = history[-1].get("t", 0.0) if history else 0.0
    best_file = folder.read_best() or {}
    hits = sum(bool(r.get("cache_hit")) for r in history)
    return {
        "run_dir": str(folder.path),
        "config": recorded,
        "evaluations": done,
        "budget": budget,
        "time_limit": search.get("time_limit"),
        "complete": bool(best_file.get("complete")) and (budget is None or done >= budget),
        "failed": sum(r["status"] != "ok" for r in history),
        "cache_hits": hits,
        "cache_hit_rate": hits / done if done else 0.0,
        "elapsed": elapsed,
        "rate": done / elapsed if elapsed > 0 else 0.0,
        "top": top_records(history, top_k or search.get("top_k", 5), estimator.get("higher_is_better", True)),
    }


def check_truth(path: str | Path, dataset: str) -> Path:
    """The truth table's path, if it exists and the dataset has a column there (else EvonasError)."""
    if dataset not in TRUTH_COLUMNS:
        raise EvonasError(f"--truth tables have accuracies for {', '.join(TRUTH_COLUMNS)}, not {dataset!r}")
    if not Path(path).is_file():
        raise EvonasError(f"--truth file {path} not found; pass the NB-201 accuracy table (a CSV)")
    return Path(path)


def true_accuracies(path: str | Path, space: str, dataset: str, genotypes: list[str]) -> dict[str, float | None]:
    """Each genotype's accuracy in a benchmark table (exact string, else an isomorphic cell)."""
    from evonas.correlate import read_cells

    cells = read_cells(check_truth(path, dataset), TRUTH_COLUMNS[dataset])
    exact = {c.arch: c.truth for c in cells}
    found: dict[str, float | None] = {g: exact.get(g) for g in genotypes}
    if None in found.values():
        impl = search_spaces.get(space)
        by_key: dict[str, float] = {}
        for cell in cells:
            by_key.setdefault(impl.str_key(cell.arch), cell.truth)
        found = {g: acc if acc is not None else by_key.get(impl.str_key(g)) for g, acc in found.items()}
    return found
