"""Aging (regularized) evolution on DEAP, driven one result at a time: the ``aging`` strategy.

The driver asks ``propose()`` for the next cell to evaluate and hands every finished
evaluation to ``tell()``; nothing here waits or knows about workers, which is what
makes the loop asynchronous steady-state and lets a resume replay history lines
through the same ``tell()``.

Rules (Real et al. 2019): until the initial population is complete every proposal is a
uniformly random cell; then the parent is the best of ``sample_size`` members drawn at
random from the population, the child is one mutation of it, and each new member pushes
out the oldest once the population holds ``population_size``. Failed evaluations never
enter the population. With a warm-up of M > P random cells the population starts as
the best P of them. Every random draw comes from one ``random.Random`` whose state is
part of ``state_dict()``.

DEAP supplies the individuals and their fitness (so ``higher_is_better`` only flips the
fitness weight), the population ``Statistics``/``Logbook`` and a ``HallOfFame`` that keeps
one member per canonical key. Statistics are computed when asked for (TensorBoard's throttled
scalars, a checkpoint's logbook entry), not on every ``tell``: at thousands of evaluations per
second a per-step summary, and a logbook that grows with every evaluation inside every
checkpoint, cost more than the search itself.
"""
from __future__ import annotations

import random
from collections import deque
from operator import attrgetter
from typing import Any

import numpy as np
from deap import base, creator, tools

from evonas.searching.registry import register
from evonas.searching.strategy import Candidate, Proposal, Strategy, StrategyContext
from search_spaces.base import SearchSpace

HALL_OF_FAME_SIZE = 20
LOGBOOK_HEADER = ["evals", "size", "best", "mean", "median", "std"]


def individual_class(higher_is_better: bool) -> type:
    """The DEAP individual type for one fitness direction (created once per process)."""
    suffix = "Max" if higher_is_better else "Min"
    fitness_name, ind_name = f"EvonasFitness{suffix}", f"EvonasCell{suffix}"
    if not hasattr(creator, fitness_name):
        creator.create(fitness_name, base.Fitness, weights=(1.0 if higher_is_better else -1.0,))
    if not hasattr(creator, ind_name):
        creator.create(ind_name, Candidate, fitness=getattr(creator, fitness_name))
    return getattr(creator, ind_name)


def _same_cell(a: Candidate, b: Candidate) -> bool:
    return a.key == b.key


@register
class AgingEvolution(Strategy):
    """Population, selection, mutation and bookkeeping of one aging-evolution run."""

    name = "aging"
    description = "regularized (aging) evolution: tournament parent, one mutation, the oldest member dies"

    #: Settings a checkpoint must share with the instance that loads it.
    STATE_CHECKS: tuple[str, ...] = ("population_size", "sample_size", "higher_is_better", "initial_size")

    def __init__(
        self,
        space: SearchSpace,
        population_size: int,
        sample_size: int,
        seed: int,
        higher_is_better: bool = True,
        warmup: int = 0,
    ) -> None:
        if not 1 <= sample_size <= population_size:
            raise ValueError(f"need 1 <= sample_size ({sample_size}) <= population_size ({population_size})")
        super().__init__(StrategyContext(space, population_size, sample_size, seed, warmup,
                                         higher_is_better=higher_is_better))
        self.space = space
        self.population_size = population_size
        self.sample_size = sample_size
        self.initial_size = max(population_size, warmup)
        self.rng = random.Random(seed)
        self.individual = individual_class(higher_is_better)
        self.population: deque[Candidate] = deque()
        self.evolving = False
        self.told = 0
        self.hall_of_fame = tools.HallOfFame(HALL_OF_FAME_SIZE, similar=_same_cell)
        self.stats = tools.Statistics(key=lambda ind: ind.fitness.values[0])
        self.stats.register("best", np.max if higher_is_better else np.min)
        self.stats.register("mean", np.mean)
        self.stats.register("median", np.median)
        self.stats.register("std", np.std)
        self.logbook = tools.Logbook()
        self.logbook.header = LOGBOOK_HEADER

    @classmethod
    def from_context(cls, context: StrategyContext) -> "AgingEvolution":
        return cls(context.space, context.population, context.sample, context.seed,
                   higher_is_better=context.higher_is_better, warmup=context.warmup)

    # ---- the two calls the driver makes --------------------------------------------
    def propose(self) -> Proposal:
        """The next cell: random while the initial population fills, else a mutated parent."""
        if not self.evolving:
            graph = self.space.sample(self.rng)
            return Proposal(self.space.to_str(graph), self.space.canonical_key(graph))
        parent = self.select()
        child = self.space.mutate_str(parent.genotype, self.rng)
        return Proposal(child, self.space.str_key(child), parent.eval_id)

    def tell(self, eval_id: int, genotype: str, key: str, score: float | None,
             costs: dict[str, float] | None = None) -> Candidate | None:
        """Record one finished evaluation (``score=None`` for a failure); the new member or None.

        ``costs`` are the cell's recorded costs; aging evolution keeps them but selects on the score.
        """
        self.told += 1
        if score is None:
            return None
        ind = self._member(eval_id, genotype, key, float(score), costs)
        if not self._joins(ind):
            return None
        self.population.append(ind)
        if self.evolving:
            self._shrink()
        elif len(self.population) >= self.initial_size:
            self._start_evolving()
        self.hall_of_fame.update([ind])
        return ind

    def statistics(self) -> dict[str, float] | None:
        """Best, mean, median and spread of the current population (None while it is empty)."""
        return self.stats.compile(self.population) if self.population else None

    def population_scores(self) -> list[float]:
        return [ind.score for ind in self.population]

    def record_statistics(self) -> None:
        """Append the population's statistics to the logbook (the driver does so at each checkpoint)."""
        stats = self.statistics()
        if stats is not None and (not len(self.logbook) or self.logbook[-1]["evals"] != self.told):
            self.logbook.record(evals=self.told, size=len(self.population), **stats)

    # ---- rules --------------------------------------------------------------------
    def _member(self, eval_id: int, genotype: str, key: str, score: float,
                costs: dict[str, float] | None) -> Candidate:
        ind = self.individual(eval_id, genotype, key, score, costs)
        ind.fitness.values = (score,)
        return ind

    def _joins(self, ind: Candidate) -> bool:
        """Whether a scored cell enters the population (always, in aging evolution)."""
        return True

    def _shrink(self) -> None:
        """The oldest members die until the population is back at its size."""
        while len(self.population) > self.population_size:
            self.population.popleft()

    def select(self) -> Candidate:
        """Best of ``sample_size`` members drawn without replacement (first one wins ties)."""
        contenders = self.rng.sample(list(self.population), self.sample_size)
        return max(contenders, key=attrgetter("fitness"))

    def _start_evolving(self) -> None:
        """Keep the best ``population_size`` of the initial cells, in their age order."""
        if len(self.population) > self.population_size:
            ranked = sorted(self.population, key=attrgetter("fitness"), reverse=True)[: self.population_size]
            keep = {id(ind) for ind in ranked}
            self.population = deque(ind for ind in self.population if id(ind) in keep)
        self.evolving = True

    @property
    def best(self) -> Candidate | None:
        """The best cell seen so far (hall of fame head)."""
        return self.hall_of_fame[0] if len(self.hall_of_fame) else None

    # ---- checkpointing ------------------------------------------------------------
    def reseed(self, seed: int) -> None:
        self.rng.seed(seed)

    def state_dict(self) -> dict[str, Any]:
        """Plain-JSON state: population in age order, hall of fame, RNG, counters, logbook (one entry per checkpoint)."""
        version, internal, gauss = self.rng.getstate()
        return {
            **{name: getattr(self, name) for name in self.STATE_CHECKS},
            "evolving": self.evolving,
            "told": self.told,
            "rng": [version, list(internal), gauss],
            "population": [ind.to_dict() for ind in self.population],
            "hall_of_fame": [ind.to_dict() for ind in self.hall_of_fame],
            "logbook": [dict(entry) for entry in self.logbook],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict()`` wrote; the settings must match this instance."""
        for name in self.STATE_CHECKS:
            if state[name] != getattr(self, name):
                raise ValueError(f"checkpoint has {name}={state[name]!r}, this run {getattr(self, name)!r}")
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.evolving = bool(state["evolving"])
        self.told = int(state["told"])
        self.population = deque(self._revive(d) for d in state["population"])
        self.hall_of_fame.clear()
        for d in state["hall_of_fame"]:
            self.hall_of_fame.insert(self._revive(d))
        self.logbook = tools.Logbook()
        self.logbook.header = LOGBOOK_HEADER
        for entry in state["logbook"]:
            self.logbook.record(**entry)

    def _revive(self, d: dict[str, Any]) -> Candidate:
        return self._member(d["id"], d["genotype"], d["key"], float(d["score"]), d.get("costs"))
