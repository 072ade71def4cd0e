"""Scoring: resolve what a score depends on (``resolve_scoring``), then score genotype strings
with it (``Scorer``); the Sweetimator interval calibration and its cache live here too, and
composite estimators (``composite``), normalised on the calibration sample."""
from evonas.scoring.calibration import Calibration, cache_path, calibration_archs, calibration_for, reference_scores
from evonas.scoring.resolve import estimator_class, parse_estimators, resolve_interval, resolve_scoring
from evonas.scoring.scorer import Scorer, build_model, fixed_batches, seeded_rng

__all__ = [
    "Calibration", "Scorer", "build_model", "cache_path", "calibration_archs", "calibration_for",
    "estimator_class", "fixed_batches", "parse_estimators", "reference_scores", "resolve_interval", "resolve_scoring",
    "seeded_rng",
]
