"""NSGA-II on DEAP, steady-state and asynchronous: the estimator's score and costs together.

The ``nsga2`` strategy: the driver talks to it through the ``Strategy`` interface, as to every
strategy, so the loop, the executors and resume are shared. Differences from aging evolution:

- every objective is a fitness weight: the score's direction (+1 or -1) and -1 per cost;
- each returned result joins at once (steady-state), and when the population exceeds its size it
  is truncated by DEAP's ``selNSGA2`` (non-dominated rank, then crowding distance) instead of
  losing its oldest member; survivors keep their age order, so the state is a plain JSON list;
- a parent is the best of ``sample_size`` random members by (rank, larger crowding distance):
  Deb's crowded tournament, binary when ``sample_size`` is 2;
- a cell already in the population does not join a second time (copies would only crowd it);
- so a repeat would be a wasted evaluation, and NSGA-II proposes only cells it has not been told
  of (nor has in flight): a repeat is re-drawn up to ``REDRAWS`` times (a new parent and mutation
  each), then mutated further for up to ``WALK_STEPS`` steps, and only then proposed anyway (a
  nearly exhausted space). With plain re-proposals half of a 1,000-evaluation NB-201 search was
  repeats (503 distinct cells); the told cells are kept as short digests in ``state_dict()``.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from deap import base, creator, tools
from deap.tools.emo import assignCrowdingDist

from evonas.searching.evolution import AgingEvolution
from evonas.searching.registry import register
from evonas.searching.strategy import Candidate, Proposal, StrategyContext
from search_spaces.base import SearchSpace


def mo_individual_class(weights: tuple[float, ...]) -> type:
    """The DEAP individual type for one tuple of objective directions (created once per process)."""
    signature = "".join("P" if w > 0 else "N" for w in weights)
    fitness_name, ind_name = f"EvonasFitnessMO{signature}", f"EvonasCellMO{signature}"
    if not hasattr(creator, fitness_name):
        creator.create(fitness_name, base.Fitness, weights=weights)
    if not hasattr(creator, ind_name):
        creator.create(ind_name, Candidate, fitness=getattr(creator, fitness_name))
    return getattr(creator, ind_name)


#: Fresh (parent, mutation) draws for a proposal that repeats a told cell, then further mutations.
REDRAWS, WALK_STEPS = 20, 50


def key_digest(key: str) -> str:
    """A told cell's canonical key, shortened for the checkpoint (a collision only costs a re-draw)."""
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


@register
class NSGA2(AgingEvolution):
    """Population, crowded-tournament selection, mutation and NSGA-II truncation of one run."""

    name = "nsga2"
    description = "NSGA-II, steady-state: the score and cost objectives together (non-dominated rank, crowding)"
    min_objectives, max_objectives = 2, None
    STATE_CHECKS = (*AgingEvolution.STATE_CHECKS, "cost_objectives")

    def __init__(self, space: SearchSpace, population_size: int, sample_size: int, seed: int,
                 cost_objectives: tuple[str, ...], higher_is_better: bool = True, warmup: int = 0) -> None:
        if not cost_objectives:
            raise ValueError("NSGA-II needs at least one cost objective besides the score")
        super().__init__(space, population_size, sample_size, seed, higher_is_better, warmup)
        self.context = replace(self.context, cost_objectives=tuple(cost_objectives))
        self.cost_objectives = list(cost_objectives)
        self.told_keys: set[str] = set()  # digests of every cell told (persisted)
        self.in_flight: set[str] = set()  # digests proposed and not told yet (lost with the process)
        self.individual = mo_individual_class((1.0 if higher_is_better else -1.0, *(-1.0 for _ in cost_objectives)))

    @classmethod
    def from_context(cls, context: StrategyContext) -> "NSGA2":
        return cls(context.space, context.population, context.sample, context.seed, context.cost_objectives,
                   higher_is_better=context.higher_is_better, warmup=context.warmup)

    def propose(self) -> Proposal:
        """A cell neither told nor in flight, if re-draws and a short mutation walk can find one."""
        proposal = super().propose()
        for _ in range(REDRAWS):
            if not self._repeats(proposal):
                break
            proposal = super().propose()
        for _ in range(WALK_STEPS):
            if not self._repeats(proposal):
                break
            child = self.space.mutate_str(proposal.genotype, self.rng)
            proposal = Proposal(child, self.space.str_key(child), proposal.parent)
        self.in_flight.add(key_digest(proposal.key))
        return proposal

    def tell(self, eval_id: int, genotype: str, key: str, score: float | None,
             costs: dict[str, float] | None = None) -> Candidate | None:
        digest = key_digest(key)
        self.told_keys.add(digest)
        self.in_flight.discard(digest)
        return super().tell(eval_id, genotype, key, score, costs)

    def _repeats(self, proposal: Proposal) -> bool:
        digest = key_digest(proposal.key)
        return digest in self.told_keys or digest in self.in_flight

    def front(self) -> list[Candidate]:
        """The population's non-dominated members, in age order."""
        if not self.population:
            return []
        first = {id(ind) for ind in tools.sortNondominated(list(self.population), len(self.population),
                                                            first_front_only=True)[0]}
        return [ind for ind in self.population if id(ind) in first]

    # ---- rules --------------------------------------------------------------------
    def _member(self, eval_id: int, genotype: str, key: str, score: float,
                costs: dict[str, float] | None) -> Candidate:
        if costs is None or not set(self.cost_objectives) <= costs.keys():
            raise ValueError(f"NSGA-II needs the costs {', '.join(self.cost_objectives)} of every scored cell")
        ind = self.individual(eval_id, genotype, key, score, costs)
        ind.fitness.values = (score, *(float(costs[name]) for name in self.cost_objectives))
        return ind

    def _joins(self, ind: Candidate) -> bool:
        return all(member.key != ind.key for member in self.population)

    def _shrink(self) -> None:
        """Truncate by non-dominated rank and crowding (``selNSGA2``), keeping age order; re-rank."""
        if len(self.population) > self.population_size:
            keep = {id(ind) for ind in tools.selNSGA2(list(self.population), self.population_size)}
            self.population = type(self.population)(ind for ind in self.population if id(ind) in keep)
        self._rank()

    def _start_evolving(self) -> None:
        self._shrink()
        self.evolving = True

    def _rank(self) -> None:
        """Each member's front index (``rank``, 0 = non-dominated) and crowding distance."""
        for rank, front in enumerate(tools.sortNondominated(list(self.population), len(self.population))):
            assignCrowdingDist(front)
            for ind in front:
                ind.rank = rank

    def select(self) -> Candidate:
        """Best of ``sample_size`` members drawn without replacement by (rank, -crowding); first wins ties."""
        contenders = self.rng.sample(list(self.population), self.sample_size)
        return min(contenders, key=lambda ind: (ind.rank, -ind.fitness.crowding_dist))

    # ---- checkpointing ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "told_keys": sorted(self.told_keys)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Also the told cells' digests (a checkpoint from before they were kept starts without)."""
        super().load_state_dict(state)
        self.told_keys = set(state.get("told_keys", ()))
        self.in_flight.clear()
        self._rank()
