"""Costs of a cell: parameters, FLOPs and predicted latency of the network a user deploys, and
measured device costs read from a table (``--cost-table``).

``CostModel`` computes and caches them (by canonical key; table costs by genotype string);
``LatencyTable`` predicts latency from per-op measurements (``evonas latency build``);
``CostTable`` reads measured costs; ``violations`` checks constraints.
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
from evonas.costs.table import CostTable, read_cost_table, with_cost_table

__all__ = ["CostModel", "CostTable", "LatencySettings", "LatencyTable", "build_table", "check_satisfiable",
           "latency_table", "measure_network", "read_cost_table", "table_path", "violations", "with_cost_table"]
