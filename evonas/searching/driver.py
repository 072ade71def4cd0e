"""The search driver: settings -> (space, estimator, executor) -> a search strategy -> run record.

``start_search`` and ``resume_search`` both return the run folder's path, so a caller
(the CLI, the API, a later ``--train-top K`` step) can go on from the finished run.

The strategy (aging evolution, NSGA-II, random search or a plug-in: ``evonas.searching.registry``)
is used only through the ``Strategy`` interface, so every strategy gets the same loop, cache,
constraints and resume. The loop is asynchronous steady-state: every worker gets a job, and
whenever a result comes back it is recorded and the next child is submitted. A child whose canonical key
was already scored is answered from the score cache at once (it still counts as an
evaluation). Each finished evaluation is appended to ``history.jsonl`` *before* the
strategy's state changes, and the checkpoint says how many history lines it covers, so a
resume (even after kill -9) replays exactly the lines written after the checkpoint:
no finished evaluation is lost or repeated, and jobs still in flight are submitted again.

With constraints or cost objectives, each child's costs (``evonas.costs``) are computed before
it is submitted. A child over a constraint gets an ``infeasible`` history line and is neither
scored nor told to the strategy nor counted against the budget; the checkpoint records how many
lines (not only evaluations) it covers. Costs read from a cost table (``--cost-table``) are looked up
by genotype string in the table recorded (path and SHA-256) in the run's settings; a cell the table
has no measurement of is infeasible in the same way.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from evonas.costs import (
    CostModel,
    CostTable,
    LatencySettings,
    LatencyTable,
    check_satisfiable,
    latency_table,
    read_cost_table,
    violations,
)
from evonas.errors import EvonasError
from evonas.execution import Executor, JobResult, make_executor
from evonas.fronts import hypervolume
from evonas.runs import RunRecord, Tally, default_run_name
from evonas.scoring import estimator_class, resolve_scoring
from evonas.searching.board import Board
from evonas.searching import registry
from evonas.searching.ask_tell import EXTERNAL
from evonas.searching.cache import ScoreCache, scoring_fingerprint
from evonas.searching.checkpoint import checkpoint_data, lines_covered, load_state, next_id, replay, still_pending
from evonas.searching.pareto import plot_front
from evonas.searching.resolving import resolve_settings
from evonas.searching.strategy import Proposal, Strategy, StrategyContext
from evonas.seeding import resume_seed
from evonas.settings import ScoringSettings, SearchSettings

#: Settings a resume may change: they decide how long or where the run goes on, not what it computes.
RESUME_OVERRIDES = ("budget", "time_limit", "executor", "workers", "gpus_per_worker", "address", "ship_data",
                    "jobs_per_call", "checkpoint_every", "checkpoint_seconds")
#: Children in a row over a constraint before the search warns, and before it gives up.
INFEASIBLE_WARN, INFEASIBLE_LIMIT = 100, 500

ExecutorFactory = Callable[[ScoringSettings, SearchSettings], Executor]


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


def default_executor(scoring: ScoringSettings, settings: SearchSettings) -> Executor:
    """The executor the settings ask for (local in-process, or a Ray actor pool)."""
    return make_executor(scoring, kind=settings.executor, workers=settings.workers,
                         gpus_per_worker=settings.gpus_per_worker, address=settings.address,
                         ship_data=settings.ship_data, jobs_per_call=settings.jobs_per_call)


def scoring_settings(settings: SearchSettings, interval_progress: Callable[[int, int], None] | None = None
                     ) -> ScoringSettings:
    """The resolved scoring settings of a search (estimator options checked, interval resolved)."""
    return resolve_scoring(
        settings.space, settings.estimator, dataset=settings.dataset, data_dir=settings.data_dir,
        batch_size=settings.batch_size, batch_policy=settings.batch_policy,
        seed=settings.seed if settings.scoring_seed is None else settings.scoring_seed,
        interval=settings.interval, estimator_settings=settings.estimator_settings,
        build_options=settings.build_options, calibration_progress=interval_progress,
    )


def latency_settings(settings: SearchSettings) -> LatencySettings:
    """What the search's latency table is measured under."""
    return LatencySettings(settings.space, settings.dataset, settings.latency_device,
                           batch_size=settings.latency_batch_size, threads=settings.latency_threads,
                           statistic=settings.latency_statistic, backend=settings.latency_backend)


def _cost_model(settings: SearchSettings, table: LatencyTable | None,
                cost_table: CostTable | None = None) -> CostModel | None:
    """The costs a search computes (None for a search without constraints or cost objectives)."""
    if not settings.costs_needed:
        return None
    return CostModel(settings.space, settings.dataset, settings.costs_needed, table, cost_table)


def start_search(
    settings: SearchSettings,
    run_dir: str | Path | None = None,
    runs_root: str | Path = "runs",
    executor_factory: ExecutorFactory = default_executor,
    progress: ProgressCallback | None = None,
    interval_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Run a new search to its budget; returns the run folder."""
    settings = resolve_settings(settings)
    if settings.score_store is not None:  # a resume from elsewhere finds the same file
        settings = replace(settings, score_store=str(Path(settings.score_store).expanduser().resolve()))
    table = latency_table(latency_settings(settings))[0] if "latency" in settings.costs_needed else None
    cost_table = read_cost_table(settings)  # the file resolve_settings took the checksum of
    if cost_table is not None:
        cost_table.check_covers()
    costs = _cost_model(settings, table, cost_table)
    if costs is not None:
        check_satisfiable(costs, settings.constraints)
    scoring = scoring_settings(settings, interval_progress)
    est_cls = estimator_class(settings.estimator)
    strategy = registry.create(settings.algorithm, StrategyContext.from_settings(settings, est_cls.higher_is_better))
    executor = executor_factory(scoring, settings)  # fails early (data, Ray address) before any folder exists
    try:
        record = RunRecord.create(run_dir or Path(runs_root) / default_run_name(settings.space, settings.estimator))
        record.write_config(settings, scoring, {
            "name": settings.estimator, "settings": scoring.estimator_settings,
            "higher_is_better": est_cls.higher_is_better, "needs_calibration": est_cls.needs_calibration,
        }, scoring_fingerprint(scoring))
        if table is not None:
            record.write_latency_table(table.to_dict())
        driver = _Driver(record, settings, scoring, strategy, lambda *_: executor, progress, costs=costs)
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
    record = RunRecord.open(run_dir)
    recorded = record.settings()
    if recorded.search.estimator == EXTERNAL:
        raise EvonasError(f"{record.path} holds an ask/tell loop (you score its cells); continue it with "
                          f"evonas.ask_tell({str(record.path)!r})")
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(changes) - set(RESUME_OVERRIDES))
    if unknown:
        raise EvonasError(f"a resumed run keeps its settings; only {', '.join(RESUME_OVERRIDES)} may change, "
                          f"not {', '.join(unknown)}")
    if {"workers", "address"} & changes.keys() and "executor" not in changes:
        changes["executor"] = None  # re-derive local/ray from the new worker settings
    settings = resolve_settings(replace(recorded.search, **changes))
    checkpoint = record.read_checkpoint()
    history = record.read_history(repair=True)
    higher = estimator_class(settings.estimator).higher_is_better
    strategy = registry.create(settings.algorithm, StrategyContext.from_settings(settings, higher))
    load_state(strategy, checkpoint, record.checkpoint_path)
    covered = lines_covered(checkpoint)
    done = sum(rec.get("status") != "infeasible" for rec in history)
    if settings.budget is not None and settings.budget < done:
        raise EvonasError(f"this run already has {done} evaluations; a --budget below that cannot apply")
    if len(history) < covered:
        raise EvonasError(f"{record.history_path} has {len(history)} lines but the checkpoint covers "
                          f"{covered}; the history was truncated and the run cannot be resumed")
    table = LatencyTable.from_dict(record.read_latency_table()) if "latency" in settings.costs_needed else None
    driver = _Driver(record, settings, recorded.scoring, strategy, executor_factory, progress, history, checkpoint,
                     costs=_cost_model(settings, table, read_cost_table(settings)))
    return driver.run()


class _Driver:
    """One session of the loop over a run record (a fresh start or a resume)."""

    def __init__(
        self,
        record: RunRecord,
        settings: SearchSettings,
        scoring: ScoringSettings,
        strategy: Strategy,
        executor_factory: ExecutorFactory,
        progress: ProgressCallback | None,
        history: list[dict[str, Any]] | None = None,
        checkpoint: dict[str, Any] | None = None,
        costs: CostModel | None = None,
    ) -> None:
        self.record, self.settings, self.scoring, self.strategy = record, settings, scoring, strategy
        self.executor_factory = executor_factory
        self.executor: Executor | None = None
        self.progress = progress
        self.cache = ScoreCache(scoring, settings.score_store)
        self.costs = costs
        self.infeasible_streak = 0
        self.tally = Tally(strategy.higher_is_better, settings.cost_objectives)
        self.first_points: list[tuple[float, ...]] = []  # the hypervolume's reference comes from these
        self.pending: dict[int, Proposal] = {}
        self.resubmit: list[tuple[int, Proposal]] = []
        self.next_id = 0
        self.elapsed_before = 0.0
        if checkpoint is not None:
            self._restore(history or [], checkpoint)
        self.board = Board(record.tb_dir, purge_step=self.tally.evaluations if checkpoint is not None else None)
        self.session_start = time.monotonic()
        self.session_done = 0
        self.checkpointed_at = -math.inf

    # ---- resume -------------------------------------------------------------------
    def _restore(self, history: list[dict[str, Any]], checkpoint: dict[str, Any]) -> None:
        covered = lines_covered(checkpoint)
        replay(self.strategy, history[covered:])
        if len(history) > covered:
            # The draws made after the checkpoint cannot be replayed; continue from a stream
            # that is still a pure function of the run seed and the evaluations done.
            self.strategy.reseed(resume_seed(self.settings.seed, len(history)))
        self.cache.fill(history)
        if self.costs is not None:
            self.costs.fill(history)
        for rec in history:
            self.tally.add(rec)
            self._note_point(rec)
        self.next_id = next_id(checkpoint, history)
        self.resubmit = still_pending(checkpoint, history)
        self.elapsed_before = max([float(checkpoint.get("elapsed", 0.0)), *(rec.get("t", 0.0) for rec in history[-1:])])

    # ---- the loop -----------------------------------------------------------------
    def run(self) -> Path:
        """Drive the search to its budget; on Ctrl-C (or any error) checkpoint first, then re-raise."""
        try:
            if self._may_submit():  # a resumed run that already reached its budget needs no workers
                self.executor = self.executor_factory(self.scoring, self.settings)
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
        return self.record.path

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.session_start

    def _may_submit(self) -> bool:
        cfg = self.settings
        if cfg.budget is not None and self.tally.evaluations + len(self.pending) >= cfg.budget:
            return False
        return cfg.time_limit is None or self.elapsed() < cfg.time_limit

    def _fill(self) -> None:
        """Give every idle worker a child; cached children are answered on the spot."""
        while self.executor.pending() < self.executor.num_workers and self._may_submit():
            proposal = self.strategy.propose()
            job_id, self.next_id = self.next_id, self.next_id + 1
            if self.costs is not None and self._infeasible(job_id, proposal):
                continue
            cached = self.cache.get(proposal.key, proposal.genotype)
            if cached is None:
                self._submit(job_id, proposal)
            else:
                self._record(job_id, proposal, cached, 0.0, self.cache.source(proposal.key), "ok", None,
                             cache_hit=True)

    def _infeasible(self, job_id: int, proposal: Proposal) -> bool:
        """Record a child over a constraint (never scored, no evaluation); True if it was one."""
        costs = self.costs(proposal.genotype, proposal.key)
        broken = self.costs.unmeasured(costs) + violations(costs, self.settings.constraints)
        if not broken:
            self.infeasible_streak = 0
            return False
        line = {
            "id": job_id, "genotype": proposal.genotype, "key": proposal.key, "parent": proposal.parent,
            "score": None, "seconds": 0.0, "worker": "constraints", "status": "infeasible", "cache_hit": False,
            "error": "; ".join(broken), "t": round(self.elapsed(), 3), "costs": costs,
        }
        self.record.append_history(line)
        self.tally.add(line)
        self.infeasible_streak += 1
        if self.infeasible_streak == INFEASIBLE_WARN:
            warnings.warn(f"{INFEASIBLE_WARN} children in a row broke the constraints ({line['error']}); "
                          "the feasible region looks nearly empty")
        if self.infeasible_streak >= INFEASIBLE_LIMIT:
            raise EvonasError(f"{INFEASIBLE_LIMIT} children in a row broke the constraints (last: {line['error']}); "
                              "the feasible region is nearly empty: loosen the --max-* (or --max-cost) limits")
        return True

    def _submit(self, job_id: int, proposal: Proposal) -> None:
        self.pending[job_id] = proposal
        self.executor.submit(job_id, proposal.genotype)

    def _finish(self, result: JobResult) -> None:
        proposal = self.pending.pop(result.job_id, None)
        if proposal is None:
            return  # not ours (or already recorded): never count an evaluation twice
        status, score, error = result.status, result.score, result.error
        if status == "ok" and (score is None or not math.isfinite(score)):
            status, score, error = "failed", None, f"non-finite score ({score})"
        self._record(result.job_id, proposal, score if status == "ok" else None, result.seconds,
                     result.worker, status, error, cache_hit=False, notes=result.notes)

    def _record(self, job_id: int, proposal: Proposal, score: float | None, seconds: float, worker: str,
                status: str, error: str | None, cache_hit: bool, notes: dict[str, Any] | None = None) -> None:
        """History line first (durable), then strategy, cache, counters, TensorBoard, progress."""
        line = {
            "id": job_id, "genotype": proposal.genotype, "key": proposal.key, "parent": proposal.parent,
            "score": score, "seconds": round(seconds, 6), "worker": worker, "status": status,
            "cache_hit": cache_hit, "error": error, "t": round(self.elapsed(), 3), **(notes or {}),
        }
        costs = None if self.costs is None else self.costs(proposal.genotype, proposal.key)
        if costs is not None:
            line["costs"] = costs
        self.record.append_history(line)
        best_before = self.strategy.best
        self.strategy.tell(job_id, proposal.genotype, proposal.key, score, costs)
        if status == "ok":
            self.cache.put(proposal.key, score)
        self.tally.add(line)
        self._note_point(line)
        self.session_done += 1
        done = self.tally.evaluations
        best = self.strategy.best
        self.board.step(done, self.strategy.statistics, best.score if best else None, self.rate(),
                        self.tally.cache_hit_rate)
        if best is not None and (best_before is None or best.eval_id != best_before.eval_id):
            self.board.best(done, best.genotype, best.score)
        if len(self.first_points) == self.settings.population and self.tally.front_costs:
            self.board.hypervolume(done, hypervolume(self.tally.front_points(), self._reference()))
        if (done % self.settings.checkpoint_every == 0
                and time.monotonic() - self.checkpointed_at >= self.settings.checkpoint_seconds):
            self.checkpoint()
        if self.progress is not None:
            self.progress(Progress(done, self.settings.budget, best.score if best else None, self.rate(),
                                   self.tally.cache_hit_rate, self.tally.failed, self.elapsed()))

    def _note_point(self, line: dict[str, Any]) -> None:
        """Keep the objective vectors of the first P scored cells (the hypervolume's reference)."""
        if (self.tally.front_costs and line.get("status") == "ok" and line.get("score") is not None
                and len(self.first_points) < self.settings.population):
            sign = -1.0 if self.strategy.higher_is_better else 1.0
            self.first_points.append((sign * line["score"], *(line["costs"][n] for n in self.tally.front_costs)))

    def _reference(self) -> tuple[float, ...]:
        """The hypervolume's reference point: the worst of each objective among the first P scored cells."""
        return tuple(max(values) for values in zip(*self.first_points))

    def rate(self) -> float:
        """Evaluations per second in this session."""
        seconds = time.monotonic() - self.session_start
        return self.session_done / seconds if seconds > 0 else 0.0

    # ---- persistence --------------------------------------------------------------
    def checkpoint(self) -> None:
        """Atomically save the state covering every history line written so far (synced first:
        a checkpoint never counts a line that is not on disk)."""
        self.record.sync()
        self.strategy.record_statistics()
        self.record.write_checkpoint(checkpoint_data(self.strategy, self.tally.evaluations, self.tally.lines,
                                                     self.next_id, self.pending, self.elapsed()))
        self.board.histogram(self.tally.evaluations, self.strategy.population_scores())
        self.record.write_best(self.summary(complete=False))
        self.checkpointed_at = time.monotonic()

    def summary(self, complete: bool) -> dict[str, Any]:
        return self.tally.summary(self.settings.budget, self.settings.top_k, self.elapsed(), complete)

    def finish(self, complete: bool) -> None:
        """best.json, hparams and closing the files; runs on a normal end and on Ctrl-C."""
        summary = self.summary(complete)
        self.record.write_best(summary)
        if self.tally.front_costs and summary["front"]:
            plot_front(self.record.front_plot_path, self.tally.cells(), summary["front"], self.settings.estimator,
                       self.tally.front_costs)
        if complete:
            cfg = self.settings
            hparams = {"space": cfg.space, "estimator": cfg.estimator, "algorithm": cfg.algorithm,
                       "population": cfg.population, "sample": cfg.sample, "budget": cfg.budget or 0, "seed": cfg.seed,
                       "batch_policy": cfg.batch_policy, "warmup": cfg.warmup}
            metrics = {"hparam/best_score": summary["best"]["score"] if summary["best"] else float("nan"),
                       "hparam/cache_hit_rate": summary["cache_hit_rate"]}
            self.board.hparams(hparams, metrics)
        self.board.close()
        self.record.close()
        self.cache.close()
