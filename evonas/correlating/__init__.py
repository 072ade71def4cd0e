"""Rank consistency of estimators against trained accuracy: score cells (``runner``) into a
resumable, shardable score store (``store``, ``folder``), compare rankings (``stats``), write
the results (``report``), re-read finished folders (``folder.read_folder``), choose a fitness
from their scores (``selection``) and bound what a fitness's own exact front reaches under a cost
(``front_bound``)."""
from evonas.correlating.folder import StoredFolder, correlate_into, merge_folders, read_folder
from evonas.correlating.front_bound import exact_front, fitness_bound, folder_bounds
from evonas.correlating.report import run_results, write_markdown, write_outputs
from evonas.correlating.runner import (
    CorrelateSettings, EstimatorRun, cell_params, correlate, load_cells, load_table_columns, parse_seeds, sample_cells,
    score_cells,
)
from evonas.correlating.selection import composite_runs, folder_selection, select_fitness
from evonas.correlating.stats import (
    CONVENTIONS, NDCG_K, TOP_FRACTIONS, bucket_spearman, head_metrics, kendall, ndcg, over_seeds, size_buckets,
    size_residual, spearman, summarize, top_k, top_precision, top_ranked,
)
from evonas.correlating.store import MANIFEST, STORE, ScoreStore, parse_shard, score_key, shard_positions

__all__ = [
    "CONVENTIONS", "CorrelateSettings", "EstimatorRun", "MANIFEST", "NDCG_K", "STORE", "ScoreStore", "StoredFolder",
    "TOP_FRACTIONS", "bucket_spearman", "cell_params", "composite_runs", "correlate", "correlate_into", "exact_front",
    "fitness_bound", "folder_bounds", "folder_selection",
    "head_metrics", "kendall", "load_cells", "load_table_columns", "merge_folders", "read_folder", "select_fitness",
    "write_markdown", "ndcg", "over_seeds", "parse_seeds", "parse_shard", "run_results", "sample_cells", "score_cells",
    "score_key", "shard_positions", "size_buckets", "size_residual", "spearman", "summarize", "top_k", "top_precision",
    "top_ranked", "write_outputs",
]
