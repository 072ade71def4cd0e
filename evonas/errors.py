"""User-facing errors: the CLI prints these as one line (``error: ...``) and exits 2.

Pure Python on purpose: settings and the run record raise them without importing torch.
``evonas.user_errors`` adds the leaf packages' own error types to the set the CLI catches.
"""
from __future__ import annotations


class EvonasError(Exception):
    """Bad input or missing resources; the message says what to do."""


class DataError(EvonasError):
    """A dataset could not be found, downloaded or read."""
