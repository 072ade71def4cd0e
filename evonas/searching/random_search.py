"""Random search (``--algorithm random``): every proposal is a uniformly random cell, the best is kept.

The baseline every search strategy should beat (Li & Talwalkar 2019 found it hard to beat on
many NAS benchmarks). Cells come from the space's own ``sample``, so they are exactly the cells
aging evolution starts its population with; no population is kept, so ``--population`` and
``--sample`` mean nothing here.
"""
from __future__ import annotations

import random
from typing import Any

from evonas.searching.registry import register
from evonas.searching.strategy import Candidate, Proposal, Strategy, StrategyContext


@register
class RandomSearch(Strategy):
    """Uniformly random cells; the best scored one is remembered (the first of equal scores)."""

    name = "random"
    description = "random search: uniformly random cells from the space, the best is kept (a baseline)"
    uses_population = False

    def __init__(self, context: StrategyContext) -> None:
        super().__init__(context)
        self.space = context.space
        self.rng = random.Random(context.seed)
        self.told = 0
        self._best: Candidate | None = None

    def propose(self) -> Proposal:
        graph = self.space.sample(self.rng)
        return Proposal(self.space.to_str(graph), self.space.canonical_key(graph))

    def tell(self, eval_id: int, genotype: str, key: str, score: float | None,
             costs: dict[str, float] | None = None) -> Candidate | None:
        self.told += 1
        if score is None:
            return None
        cell = Candidate(eval_id, genotype, key, float(score), costs)
        if self._best is None or (cell.score > self._best.score if self.higher_is_better
                                  else cell.score < self._best.score):
            self._best = cell
        return cell

    @property
    def best(self) -> Candidate | None:
        return self._best

    def reseed(self, seed: int) -> None:
        self.rng.seed(seed)

    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"higher_is_better": self.higher_is_better, "told": self.told, "rng": [version, list(internal), gauss],
                "best": None if self._best is None else self._best.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["higher_is_better"] != self.higher_is_better:
            raise ValueError(f"checkpoint has higher_is_better={state['higher_is_better']!r}, "
                             f"this run {self.higher_is_better!r}")
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.told = int(state["told"])
        best = state["best"]
        self._best = None if best is None else Candidate(best["id"], best["genotype"], best["key"],
                                                         float(best["score"]), best.get("costs"))
