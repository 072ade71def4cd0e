"""Search: aging evolution and NSGA-II on DEAP (``evolution``, ``nsga2``), the asynchronous driver
loop over a run record (``driver``), Pareto measures (``pareto``), the score cache and the TensorBoard view."""
from evonas.searching.driver import (
    RESUME_OVERRIDES,
    Progress,
    ProgressCallback,
    default_executor,
    resume_search,
    scoring_settings,
    start_search,
)

__all__ = ["RESUME_OVERRIDES", "Progress", "ProgressCallback", "default_executor", "resume_search",
           "scoring_settings", "start_search"]
