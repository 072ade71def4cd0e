"""User-facing errors: the CLI prints these as one line (``error: ...``) and exits 2."""
from __future__ import annotations

from estimators import UnknownEstimatorError
from search_spaces import GenotypeError, UnknownSpaceError


class EvonasError(Exception):
    """Bad input or missing resources; the message says what to do."""


class DataError(EvonasError):
    """A dataset could not be found, downloaded or read."""


#: Exceptions that mean "the user asked for something wrong", never a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (
    EvonasError,
    GenotypeError,
    UnknownSpaceError,
    UnknownEstimatorError,
)
