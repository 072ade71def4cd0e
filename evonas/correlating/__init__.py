"""Rank consistency of estimators against trained accuracy: score cells (``runner``) into a
resumable, shardable score store (``store``, ``folder``), compare rankings (``stats``), write
the results (``report``)."""
from evonas.correlating.folder import correlate_into, merge_folders
from evonas.correlating.report import run_results, write_outputs
from evonas.correlating.runner import (
    CorrelateSettings, EstimatorRun, cell_params, correlate, load_cells, parse_seeds, sample_cells, score_cells,
)
from evonas.correlating.stats import (
    CONVENTIONS, NDCG_K, TOP_FRACTIONS, bucket_spearman, head_metrics, kendall, ndcg, over_seeds, size_buckets,
    size_residual, spearman, summarize, top_k, top_precision, top_ranked,
)
from evonas.correlating.store import MANIFEST, STORE, ScoreStore, parse_shard, score_key, shard_positions

__all__ = [
    "CONVENTIONS", "CorrelateSettings", "EstimatorRun", "MANIFEST", "NDCG_K", "STORE", "ScoreStore", "TOP_FRACTIONS",
    "bucket_spearman", "cell_params", "correlate", "correlate_into", "head_metrics", "kendall", "load_cells",
    "merge_folders", "ndcg", "over_seeds", "parse_seeds", "parse_shard", "run_results", "sample_cells", "score_cells",
    "score_key", "shard_positions", "size_buckets", "size_residual", "spearman", "summarize", "top_k", "top_precision",
    "top_ranked", "write_outputs",
]
