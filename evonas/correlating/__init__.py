"""Rank consistency of estimators against trained accuracy: score cells (``runner``), compare
rankings (``stats``), write the results (``report``)."""
from evonas.correlating.report import write_outputs
from evonas.correlating.runner import CorrelateSettings, EstimatorRun, correlate, load_cells, sample_cells, score_cells
from evonas.correlating.stats import kendall, spearman, summarize, top_k, top_precision

__all__ = [
    "CorrelateSettings", "EstimatorRun", "correlate", "kendall", "load_cells", "sample_cells", "score_cells",
    "spearman", "summarize", "top_k", "top_precision", "write_outputs",
]
