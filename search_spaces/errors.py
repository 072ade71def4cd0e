"""Errors of the search-space package (no torch here, so anything may import them)."""
from __future__ import annotations


class GenotypeError(ValueError):
    """A genotype string or graph that does not describe a cell of the space."""


class BenchmarkError(ValueError):
    """A truth table that is missing, lacks a column, or holds a bad row."""
