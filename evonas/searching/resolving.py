"""Search settings completed with what the chosen space and strategy say, and checked against them.

``SearchSettings`` is pure data and may import neither the search spaces nor the strategy
registry; every caller that turns a user's request into a runnable search (the CLI, the API, the
driver, a resume, an ask/tell loop) goes through here, so an unknown ``--algorithm`` or one that
cannot take the given objectives is the same one-line error everywhere.
"""
from __future__ import annotations

import search_spaces
from evonas.costs.table import with_cost_table
from evonas.searching import registry
from evonas.settings import SearchSettings


def resolve_settings(settings: SearchSettings) -> SearchSettings:
    """``settings.resolved()`` with the space's default (population, sample), checked against the strategy."""
    space = search_spaces.get(settings.space)  # an unknown name is a one-line UnknownSpaceError
    population, sample = space.population_sample
    strategy = None if settings.algorithm is None else registry.get(settings.algorithm)  # unknown: one-line error
    if strategy is not None and not strategy.uses_population and settings.budget is not None:
        population = min(population, settings.budget)  # a default it ignores must not refuse a short run
    resolved = with_cost_table(settings).resolved((population, sample))  # a cost table's columns and checksum
    registry.check_objectives(resolved.algorithm, len(resolved.objectives or ()) or 1)
    return resolved
