"""Rank consistency of estimators against trained accuracy: score cells (``runner``), compare
rankings (``stats``), write the results (``report``)."""
from evonas.correlating.report import write_outputs
from evonas.correlating.runner import (
    CorrelateSettings, EstimatorRun, cell_params, correlate, load_cells, sample_cells, score_cells,
)
from evonas.correlating.stats import (
    CONVENTIONS, NDCG_K, TOP_FRACTIONS, bucket_spearman, head_metrics, kendall, ndcg, size_buckets, size_residual,
    spearman, summarize, top_k, top_precision, top_ranked,
)

__all__ = [
    "CONVENTIONS", "CorrelateSettings", "EstimatorRun", "NDCG_K", "TOP_FRACTIONS", "bucket_spearman", "cell_params",
    "correlate", "head_metrics", "kendall", "load_cells", "ndcg", "sample_cells", "score_cells", "size_buckets", "size_residual",
    "spearman", "summarize", "top_k", "top_precision", "top_ranked", "write_outputs",
]
