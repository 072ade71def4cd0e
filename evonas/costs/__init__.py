"""Costs of a cell: parameters, FLOPs and predicted latency of the network a user deploys.

``CostModel`` computes and caches them by canonical key; ``LatencyTable`` predicts latency from
per-op measurements (``evonas latency build``); ``violations`` checks constraints.
"""
from evonas.costs.latency import (
           LatencySettings,
           LatencyTable,
           build_table,
           latency_table,
           measure_network,
           table_path,
)
from evonas.costs.model import CostModel, check_satisfiable, violations

__all__ = ["CostModel", "LatencySettings", "LatencyTable", "build_table", "check_satisfiable", "latency_table",
           "measure_network", "table_path", "violations"]
