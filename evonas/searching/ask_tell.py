"""An ask/tell loop over a run folder, for people who evaluate cells themselves.

``ask()`` returns a genotype string to evaluate (train it, look it up, measure it) and
``tell(genotype, score)`` hands the result back; any registered strategy decides what comes
next. The folder is an ordinary run folder (``config.json``, ``history.jsonl``, ``checkpoint.json``
in the driver's format, readable by ``evonas.Run``), and every ask and tell is durable before it
returns: its history line is written first, then the checkpoint. Reopening the folder (after the
loop's process died, even by kill -9 while the caller was evaluating) therefore continues exactly
where it stopped: the same state, the same random stream, the same future proposals as a loop
that never stopped.

Asked cells not yet told when the process died are **asked again** after a reopen, oldest first,
before anything new is proposed: their results never arrived, the strategy already drew them (its
random stream moved past them), and proposing new cells instead would both lose that draw and
change every later proposal. A caller that did finish evaluating one may simply ``tell`` it
without asking again. A cell that was never asked may be told too (known cells to start from).

As in the driver, a proposed cell whose canonical key was already scored is answered from those
scores without being handed out (its history line says ``cache_hit``): a loop never asks for the
same cell twice. Failed evaluations (score None or NaN) are not remembered, so they may come again.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import search_spaces
from evonas.errors import EvonasError
from evonas.runs import RunRecord, Tally
from evonas.searching import registry
from evonas.searching.cache import ScoreCache, scoring_fingerprint
from evonas.searching.checkpoint import checkpoint_data, lines_covered, load_state, next_id, replay, still_pending
from evonas.searching.resolving import resolve_settings
from evonas.searching.strategy import Candidate, Proposal, StrategyContext
from evonas.seeding import resume_seed
from evonas.settings import COSTS, DEFAULT_DATASET, DEFAULT_SPACE, ScoringSettings, SearchSettings
from search_spaces.base import GenotypeError

#: The estimator an ask/tell folder records: its scores come from outside evonas.
EXTERNAL = "external"
#: The ``worker`` of a history line the caller told.
CALLER = "caller"
#: Proposals in a row answered from earlier scores before the loop gives up (the strategy keeps
#: proposing cells that were all evaluated already: the space, or its reachable part, is exhausted).
CACHED_STREAK_LIMIT = 10_000
#: ``open_loop``'s arguments that are named otherwise in ``SearchSettings``.
_FIELDS = {"strategy": "algorithm", "cost_objectives": "objectives"}


class AskTell:
    """One ask/tell loop over its folder; use ``open_loop`` (or ``evonas.ask_tell``) to get one.

    Several cells may be out at once (ask a batch, evaluate it in parallel, tell in any order),
    but call it from one thread: each call writes the folder.
    """

    def __init__(self, record: RunRecord, settings: SearchSettings, higher_is_better: bool,
                 history: list[dict[str, Any]] | None = None, checkpoint: dict[str, Any] | None = None) -> None:
        self._record, self.settings = record, settings
        self._space = search_spaces.get(settings.space)
        self._strategy = registry.create(settings.algorithm, StrategyContext.from_settings(settings, higher_is_better))
        self._cache = ScoreCache(loop_scoring(settings))
        self._costs_by_key: dict[str, dict[str, float]] = {}  # a cached answer repeats the told costs too
        self._tally = Tally(higher_is_better, settings.cost_objectives)
        self._history: list[dict[str, Any]] = []
        self._pending: dict[int, Proposal] = {}
        self._asked_at: dict[int, float] = {}
        self._again: list[int] = []  # pending ids to hand out again after a reopen, oldest first
        self._next_id = 0
        self._elapsed_before = 0.0
        self._started = time.monotonic()
        if checkpoint is not None:
            self._restore(history or [], checkpoint)

    def _restore(self, history: list[dict[str, Any]], checkpoint: dict[str, Any]) -> None:
        load_state(self._strategy, checkpoint, self._record.checkpoint_path)
        unseen = history[lines_covered(checkpoint):]
        replay(self._strategy, unseen)
        if any(rec.get("cache_hit") for rec in unseen):
            # Killed inside an ask that answered proposals from earlier scores: those draws came
            # after the checkpoint and cannot be replayed, so go on from a stream fixed by the history.
            self._strategy.reseed(resume_seed(self.settings.seed, len(history)))
        self._cache.fill(history)
        self._costs_by_key = {rec["key"]: rec["costs"] for rec in history if rec.get("costs") is not None}
        self._tally.extend(history)
        self._history = list(history)
        self._pending = dict(still_pending(checkpoint, history))
        self._again = list(self._pending)
        self._next_id = next_id(checkpoint, history)
        self._elapsed_before = max([float(checkpoint.get("elapsed", 0.0)),
                                    *(rec.get("t", 0.0) for rec in history[-1:])])

    # ---- the two calls ----------------------------------------------------------------
    def ask(self) -> str:
        """The next genotype string to evaluate (a cell asked before a reopen and never told comes first)."""
        while self._again:
            job_id = self._again.pop(0)
            if job_id in self._pending:
                self._asked_at[job_id] = time.monotonic()
                return self._pending[job_id].genotype
        for _ in range(CACHED_STREAK_LIMIT):
            proposal = self._strategy.propose()
            job_id, self._next_id = self._next_id, self._next_id + 1
            cached = self._cache.get(proposal.key, proposal.genotype)
            if cached is None:
                self._pending[job_id] = proposal
                self._asked_at[job_id] = time.monotonic()
                self._checkpoint()
                return proposal.genotype
            self._record_line(job_id, proposal, cached, self._costs_by_key.get(proposal.key), "cache", 0.0)
        raise EvonasError(f"the last {CACHED_STREAK_LIMIT} proposals were all cells scored before; "
                          "the strategy has nothing new to ask (the space looks exhausted)")

    def tell(self, genotype: str, score: float | None, costs: dict[str, float] | None = None) -> None:
        """The result of evaluating ``genotype``: a number, or None/NaN when the evaluation failed.

        With cost objectives (``cost_objectives=`` of ``open_loop``) a scored cell needs its costs, e.g.
        ``costs={"params": 1.2}`` in the unit of ``evonas.settings.COSTS``.
        """
        job_id = next((i for i, p in self._pending.items() if p.genotype == genotype), None)
        proposal = self._pending[job_id] if job_id is not None else self._unasked(genotype)
        value = _score(score)
        checked = self._costs(costs, needed=value is not None)
        if job_id is None:
            job_id, self._next_id = self._next_id, self._next_id + 1
        else:
            del self._pending[job_id]
        seconds = time.monotonic() - self._asked_at.pop(job_id, time.monotonic())
        self._record_line(job_id, proposal, value, checked, CALLER, seconds)
        self._checkpoint()

    # ---- what the loop holds ------------------------------------------------------------
    @property
    def best(self) -> Candidate | None:
        """The best cell told so far (as the strategy ranks it)."""
        return self._strategy.best

    def front(self) -> list[Candidate]:
        """The strategy's non-dominated cells (with cost objectives), else the best alone."""
        return self._strategy.front()

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every recorded evaluation, in order, as its ``history.jsonl`` line."""
        return list(self._history)

    @property
    def pending(self) -> list[str]:
        """Genotypes asked and not yet told, oldest first."""
        return [p.genotype for _, p in sorted(self._pending.items())]

    @property
    def path(self) -> Path:
        return self._record.path

    def close(self) -> None:
        """Close the history file (everything told is already on disk)."""
        self._record.close()

    def __enter__(self) -> "AskTell":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        best = self.best
        return (f"AskTell({str(self.path)!r}, {self.settings.space}/{self.settings.algorithm}, "
                f"{self._tally.evaluations} evaluations, {len(self._pending)} pending, "
                f"best={best.score if best else None})")

    # ---- internals --------------------------------------------------------------------
    def _unasked(self, genotype: str) -> Proposal:
        """A cell the caller brings without asking: checked and keyed by the space."""
        if not isinstance(genotype, str):
            raise EvonasError(f"tell() takes the genotype string ask() returned, not {type(genotype).__name__}")
        try:
            graph = self._space.from_str(genotype)
        except GenotypeError as exc:
            raise EvonasError(f"tell(): {exc}") from None
        return Proposal(genotype, self._space.canonical_key(graph))

    def _costs(self, costs: dict[str, float] | None, needed: bool) -> dict[str, float] | None:
        """The told costs as floats, checked against the loop's cost objectives."""
        wanted = self.settings.cost_objectives
        if needed and any(name not in (costs or {}) for name in wanted):
            raise EvonasError(f"this loop optimises {', '.join(wanted)} too: "
                              f"tell(genotype, score, costs={{{', '.join(repr(n) + ': ...' for n in wanted)}}})")
        if costs is None:
            return None
        unknown = sorted(set(costs) - set(COSTS))
        if unknown:
            raise EvonasError(f"unknown cost {unknown[0]!r} in costs=; costs are {', '.join(COSTS)}")
        try:
            return {name: float(value) for name, value in costs.items()}
        except (TypeError, ValueError):
            raise EvonasError(f"costs must be numbers, not {costs!r}") from None

    def _record_line(self, job_id: int, proposal: Proposal, score: float | None, costs: dict[str, float] | None,
                     worker: str, seconds: float) -> None:
        """History line first (durable against a kill at once), then strategy, cache and counters."""
        line: dict[str, Any] = {
            "id": job_id, "genotype": proposal.genotype, "key": proposal.key, "parent": proposal.parent,
            "score": score, "seconds": round(seconds, 6), "worker": worker,
            "status": "ok" if score is not None else "failed", "cache_hit": worker == "cache",
            "error": None if score is not None else "no score told", "t": round(self._elapsed(), 3),
        }
        if costs is not None:
            line["costs"] = costs
        self._record.append_history(line)
        self._strategy.tell(job_id, proposal.genotype, proposal.key, score, costs)
        if score is not None:
            self._cache.put(proposal.key, score)
        if costs is not None:
            self._costs_by_key.setdefault(proposal.key, costs)
        self._tally.add(line)
        self._history.append(line)

    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._started

    def _checkpoint(self) -> None:
        self._record.sync()  # a checkpoint never covers a line that is not on disk
        self._record.write_checkpoint(checkpoint_data(self._strategy, self._tally.evaluations, self._tally.lines,
                                                      self._next_id, self._pending, self._elapsed()))


def _score(score: Any) -> float | None:
    """A told score as a float, or None for a failed evaluation (None or NaN; infinities too)."""
    if score is None:
        return None
    try:
        value = float(score)
    except (TypeError, ValueError):
        raise EvonasError(f"a score is a number, or None for a failed evaluation, not {score!r}") from None
    return value if math.isfinite(value) else None


def loop_scoring(settings: SearchSettings) -> ScoringSettings:
    """The scoring settings an ask/tell folder records: the caller's own evaluation, named ``external``."""
    return ScoringSettings(space=settings.space, estimator=EXTERNAL, dataset=settings.dataset, seed=settings.seed)


def loop_settings(**given: Any) -> SearchSettings:
    """Resolved settings of a new loop from ``SearchSettings`` values (None: the default).

    A loop has no budget (the caller stops when it likes), so it is checked as an unbounded search.
    """
    values = {name: value for name, value in given.items() if value is not None}
    values.setdefault("space", DEFAULT_SPACE)
    values.setdefault("dataset", DEFAULT_DATASET)
    checked = resolve_settings(SearchSettings(estimator=EXTERNAL, budget=sys.maxsize, **values))
    return replace(checked, budget=None)


def open_loop(folder: str | Path, *, space: str | None = None, strategy: str | None = None, seed: int | None = None,
              population: int | None = None, sample: int | None = None, warmup: int | None = None,
              cost_objectives: tuple[str, ...] | list[str] | None = None, higher_is_better: bool | None = None,
              dataset: str | None = None) -> AskTell:
    """A new ask/tell loop in ``folder``, or the one already there, continued exactly.

    ``strategy`` is any ``--algorithm`` name (default aging, or nsga2 with cost objectives);
    ``cost_objectives`` (of ``params``, ``flops``, ``latency``) are told with each score. When
    reopening, the settings left None are the recorded ones and those given must match them.
    """
    given = {"space": space, "strategy": strategy, "seed": seed, "population": population, "sample": sample,
             "warmup": warmup, "cost_objectives": tuple(cost_objectives) if cost_objectives else None,
             "dataset": dataset}
    record = RunRecord(folder)
    if record.config_path.exists():
        return _reopen(RunRecord.open(folder), given, higher_is_better)
    objectives = (EXTERNAL, *given["cost_objectives"]) if given["cost_objectives"] else None
    settings = loop_settings(**{**{_FIELDS.get(k, k): v for k, v in given.items()}, "objectives": objectives})
    higher = True if higher_is_better is None else bool(higher_is_better)
    record = RunRecord.create(folder)
    scoring = loop_scoring(settings)
    record.write_config(settings, scoring, {"name": EXTERNAL, "settings": {}, "higher_is_better": higher,
                                            "needs_calibration": False}, scoring_fingerprint(scoring))
    loop = AskTell(record, settings, higher)
    loop._checkpoint()
    return loop


def _reopen(record: RunRecord, given: dict[str, Any], higher_is_better: bool | None) -> AskTell:
    recorded = record.settings()
    if recorded.search.estimator != EXTERNAL:
        raise EvonasError(f"{record.path} holds a search scored by {recorded.search.estimator!r}, not an ask/tell "
                          "loop; continue it with `evonas search --resume`, or pick another folder")
    for name, value in given.items():
        held = getattr(recorded.search, _FIELDS.get(name, name))
        if name == "cost_objectives":
            held = tuple(held or ())[1:]
        if value is not None and value != held:
            raise EvonasError(f"{record.path} holds an ask/tell loop with {name}={held!r}, not {value!r}; "
                              "leave it out to continue the loop, or pick another folder")
    if higher_is_better is not None and bool(higher_is_better) != recorded.higher_is_better:
        raise EvonasError(f"{record.path} holds an ask/tell loop with higher_is_better={recorded.higher_is_better}")
    history = record.read_history(repair=True)
    checkpoint = record.read_checkpoint()
    if len(history) < lines_covered(checkpoint):
        raise EvonasError(f"{record.history_path} has {len(history)} lines but the checkpoint covers "
                          f"{lines_covered(checkpoint)}; the history was truncated and the loop cannot continue")
    return AskTell(record, recorded.search, recorded.higher_is_better, history, checkpoint)
