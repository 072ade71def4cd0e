"""evonas: evolutionary NAS with pluggable zero-cost estimators."""
__version__ = "0.1.0"
