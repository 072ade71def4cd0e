"""Scoring: resolve what a score depends on (``resolve_scoring``), then score genotype strings
with it (``Scorer``), or score any ``nn.Module`` (``models``); the Sweetimator interval
calibration and its cache live here too, and composite estimators (``composite``), normalised
on the calibration sample or on a sample of models."""
from evonas.scoring.calibration import Calibration, cache_path, calibration_archs, calibration_for, reference_scores
from evonas.scoring.composite import Composite, estimator_class, make_estimator, parse_composite
from evonas.scoring.models import (
    ModelScore, calibrate_models, composite_normalisation, default_depth_units, score_model,
)
from evonas.scoring.resolve import parse_estimators, resolve_interval, resolve_scoring
from evonas.scoring.scorer import Scorer, build_model, fixed_batches, seeded_rng

__all__ = [
    "Calibration", "Composite", "ModelScore", "Scorer", "build_model", "cache_path", "calibrate_models",
    "calibration_archs", "calibration_for", "composite_normalisation", "default_depth_units", "estimator_class",
    "fixed_batches", "make_estimator", "parse_composite", "parse_estimators", "reference_scores",
    "resolve_interval", "resolve_scoring", "score_model", "seeded_rng",
]
