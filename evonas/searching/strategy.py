"""The search-strategy interface: everything the driver and the ask/tell loop need from an algorithm.

A strategy proposes cells and is told their results; it never waits, schedules or touches a file.
That is what lets one driver give every strategy the same asynchronous loop, score cache,
constraints, run folder and exact kill -9 resume: the driver appends each result to the history
before telling the strategy, checkpoints ``state_dict()`` with the number of history lines it
covers, and on resume loads the state, tells it the lines written after it, then calls
``reseed`` (the random draws made after the checkpoint cannot be replayed, so the strategy goes
on from a stream that is still a pure function of the run seed and the evaluations done).

A strategy is built from a ``StrategyContext`` (the space plus the resolved settings it may use).
The class attributes say what it supports; ``resolve_settings`` checks the objectives against
them before any search starts, so a strategy never sees a setting it cannot handle.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import search_spaces
from evonas.settings import SearchSettings
from search_spaces.base import SearchSpace


@dataclass(frozen=True)
class Proposal:
    """A cell to evaluate: its text form, canonical key and the parent's evaluation id."""

    genotype: str
    key: str
    parent: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Candidate:
    """An evaluated cell (DEAP-based strategies add a ``fitness`` attribute on top)."""

    def __init__(self, eval_id: int, genotype: str, key: str, score: float,
                 costs: dict[str, float] | None = None) -> None:
        self.eval_id = eval_id
        self.genotype = genotype
        self.key = key
        self.score = score
        self.costs = costs

    def to_dict(self) -> dict[str, Any]:
        data = {"id": self.eval_id, "genotype": self.genotype, "key": self.key, "score": self.score}
        if self.costs is not None:
            data["costs"] = self.costs
        return data

    def __repr__(self) -> str:
        return f"Candidate(id={self.eval_id}, genotype={self.genotype!r}, score={self.score!r})"


@dataclass(frozen=True)
class StrategyContext:
    """What a strategy is built from: the space and the run's resolved settings.

    ``cost_objectives`` are the costs (``evonas.settings.COSTS``) optimised besides the score, in
    order; every scored cell is told with them. ``higher_is_better`` is the score's direction.
    """

    space: SearchSpace
    population: int
    sample: int
    seed: int
    warmup: int = 0
    cost_objectives: tuple[str, ...] = ()
    higher_is_better: bool = True

    @classmethod
    def from_settings(cls, settings: SearchSettings, higher_is_better: bool) -> "StrategyContext":
        """The context of a run with resolved ``settings`` (its estimator's direction given apart)."""
        return cls(search_spaces.get(settings.space), settings.population, settings.sample, settings.seed,
                   settings.warmup, settings.cost_objectives, higher_is_better)

    @property
    def objectives(self) -> int:
        """How many objectives: the score plus each cost objective."""
        return 1 + len(self.cost_objectives)


class Strategy(ABC):
    """A search algorithm driven one result at a time (see the module docstring)."""

    #: The ``--algorithm`` name it registers under.
    name: ClassVar[str] = ""
    #: One line for listings and error messages.
    description: ClassVar[str] = ""
    #: How many objectives (the score plus cost objectives) it takes; ``None``: no upper bound.
    min_objectives: ClassVar[int] = 1
    max_objectives: ClassVar[int | None] = 1
    #: Whether ``--population``/``--sample`` mean anything to it (when not, the default
    #: population is capped at the budget, so a short run is not refused for it).
    uses_population: ClassVar[bool] = True

    higher_is_better: bool

    def __init__(self, context: StrategyContext) -> None:
        self.context = context
        self.higher_is_better = context.higher_is_better

    @classmethod
    def from_context(cls, context: StrategyContext) -> "Strategy":
        """How the driver builds it; override only to keep another constructor signature."""
        return cls(context)

    @classmethod
    def accepts(cls, objectives: int) -> bool:
        """Whether it can optimise this many objectives."""
        return objectives >= cls.min_objectives and (cls.max_objectives is None or objectives <= cls.max_objectives)

    # ---- the loop -------------------------------------------------------------------
    @abstractmethod
    def propose(self) -> Proposal:
        """The next cell to evaluate (draw any randomness from a seeded RNG in the state)."""

    @abstractmethod
    def tell(self, eval_id: int, genotype: str, key: str, score: float | None,
             costs: dict[str, float] | None = None) -> Candidate | None:
        """One finished evaluation (``score`` None: it failed). Results come back in any order,
        and cells it never proposed may be told too (a resume, a user's own cells). Returns the
        cell as the strategy now holds it, or None when it keeps nothing of it."""

    @property
    @abstractmethod
    def best(self) -> Candidate | None:
        """The best cell told so far (by score; None before any scored cell)."""

    def front(self) -> list[Candidate]:
        """The non-dominated cells it holds (multi-objective strategies); by default the best alone."""
        best = self.best
        return [] if best is None else [best]

    # ---- checkpointing --------------------------------------------------------------
    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The whole state as plain JSON (RNG included), enough to continue identically."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``; raise ValueError (or KeyError/TypeError) if it does not fit."""

    @abstractmethod
    def reseed(self, seed: int) -> None:
        """Replace the RNG's state by ``seed`` (called after a resume replayed history)."""

    # ---- what TensorBoard shows -----------------------------------------------------
    def statistics(self) -> dict[str, float] | None:
        """``best``/``mean``/``median`` of the current population, or None (no population curves)."""
        return None

    def record_statistics(self) -> None:
        """Keep a statistics entry in the state (the driver calls it before each checkpoint)."""

    def population_scores(self) -> list[float]:
        """Scores of the current population (the fitness histogram); empty: no histogram."""
        return []
