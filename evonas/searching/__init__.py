"""Search: the ``Strategy`` interface and its registry (``strategy``, ``registry``; built-ins aging
evolution, NSGA-II and random search in ``evolution``, ``nsga2``, ``random_search``), the
asynchronous driver loop over a run record (``driver``), the ask/tell loop for callers who evaluate
cells themselves (``ask_tell``), Pareto measures (``pareto``), the score cache and the TensorBoard view."""
from evonas.searching.ask_tell import AskTell, open_loop
from evonas.searching.driver import (
    RESUME_OVERRIDES,
    Progress,
    ProgressCallback,
    default_executor,
    resume_search,
    scoring_settings,
    start_search,
)
from evonas.searching.resolving import resolve_settings
from evonas.searching.strategy import Candidate, Proposal, Strategy, StrategyContext

__all__ = ["RESUME_OVERRIDES", "AskTell", "Candidate", "Progress", "ProgressCallback", "Proposal", "Strategy",
           "StrategyContext", "default_executor", "open_loop", "resolve_settings", "resume_search", "scoring_settings",
           "start_search"]
