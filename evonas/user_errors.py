"""Every exception type that means "the user asked for something wrong", never a bug.

The CLI turns these into one ``error: ...`` line and exit status 2; Ray workers hand them
back to the driver as themselves. It lives apart from ``evonas.errors`` because naming the
leaf packages' error types imports them (and torch with them).
"""
from __future__ import annotations

from estimators import UnknownEstimatorError
from estimators.base import EstimatorError
from evonas.errors import EvonasError
from search_spaces import GenotypeError, UnknownSpaceError
from search_spaces.errors import BenchmarkError

USER_ERRORS: tuple[type[BaseException], ...] = (
    EvonasError,
    GenotypeError,
    UnknownSpaceError,
    UnknownEstimatorError,
    BenchmarkError,
)

__all__ = ["USER_ERRORS", "EstimatorError"]
