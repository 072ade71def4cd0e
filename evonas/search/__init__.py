"""Search: aging evolution on DEAP (``evolution``), the asynchronous driver loop over a run
record (``driver``), the score cache and the TensorBoard view."""
from evonas.search.driver import (
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
