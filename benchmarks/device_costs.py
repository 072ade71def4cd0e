"""How well evonas's own costs rank real-device costs: HW-NAS-Bench over every NAS-Bench-201 cell.

evonas's costs of each cell (params and FLOPs of the deployed network; CPU latency predicted by the
per-op table, min of the repeats) against each latency/energy column HW-NAS-Bench measured (read
with ``CostTable``, the reader behind ``--cost-table``): Spearman, Kendall tau-b and *cheap*, the
share of the device's cheapest 25% that the proxy's cheapest 25% holds (``top_precision`` on
negated costs), over the cells the device measured (-1 = none). Prints the rows of ``device_costs.md``.

    python benchmarks/device_costs.py [--table ../shared/benchmarks/nb201_hw_cifar10.csv] [--out runs/device_costs.json]
"""
import argparse, json

import torch

from evonas.correlating.stats import kendall, spearman, top_precision
from evonas.costs import CostModel, CostTable, LatencySettings, latency_table
from evonas.costs.table_front import table_costs

PROXIES = ("params", "flops", "latency")
p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--table", default="../shared/benchmarks/nb201_hw_cifar10.csv")
p.add_argument("--out", default="runs/device_costs.json")
args = p.parse_args()
torch.set_num_threads(1)
table = CostTable.read("nb201", args.table)
latency = latency_table(LatencySettings("nb201", "cifar10", "cpu", threads=1, statistic="min"))[0]
costs = table_costs(CostModel("nb201", "cifar10", PROXIES, latency), table.genotypes)
rows = {}
print("| device cost | cells measured | params rho / tau / cheap | FLOPs rho / tau / cheap | CPU latency rho / tau / cheap |")
print("| --- | --- | --- | --- | --- |")
for column in (c for c in table.columns if c.endswith(("_latency", "_energy"))):
    measured = [i for i, v in enumerate(table.values[column]) if v >= 0]
    device = [table.values[column][i] for i in measured]
    rows[column] = {name: [spearman(proxy, device), kendall(proxy, device), top_precision([-v for v in proxy], [-v for v in device], 0.25)]
                    for name in PROXIES for proxy in [[costs[i][name] for i in measured]]}
    cells = [f"{rho:.3f} / {tau:.3f} / {cheap:.0%}" for rho, tau, cheap in rows[column].values()]
    print(f"| {column} | {len(measured):,} of {len(table.genotypes):,} | " + " | ".join(cells) + " |")
open(args.out, "w").write(json.dumps({"table": args.table, "sha256": table.sha256, "rows": rows}, indent=2) + "\n")
