"""How well evonas's own costs rank real-device costs: HW-NAS-Bench over every NAS-Bench-201 cell.

For each of the 15,625 NB-201 cells, the costs evonas computes itself (parameters and FLOPs of the
deployed network, exactly, by ``evonas.costs.table_front.table_costs``; CPU latency predicted by a
per-op table, ``evonas.costs.latency_table``, torch backend, minimum of the repeats, batch 1, one
thread) are ranked against the latency and energy HW-NAS-Bench measured on six devices (read with
``evonas.costs.CostTable``, the reader behind ``--cost-table``). Spearman rho and Kendall tau-b come
from ``evonas.correlating.stats``. Negative table entries are cells a device has no measurement of
(HW-NAS-Bench's -1); each statistic is over the measured cells, and for such a column also over
all cells as stored, to show what the -1 entries do.

    python benchmarks/device_costs.py [--table ../shared/benchmarks/nb201_hw_cifar10.csv]

Writes ``benchmarks/device_costs.json`` and ``benchmarks/device_costs.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from evonas.correlating.stats import kendall, spearman
from evonas.costs import CostModel, CostTable, LatencySettings, latency_table
from evonas.costs.table_front import table_costs
from evonas.settings import cost_unit

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PROXIES = ("params", "flops", "latency")
PROXY_NAMES = {"params": "params", "flops": "FLOPs", "latency": "CPU latency"}
#: Above this Spearman a proxy orders cells nearly as the device does (see the write-up).
ENOUGH = 0.9
#: A constraint's view: of the device's cheapest fraction of cells, how many the proxy's cheapest fraction holds.
CHEAPEST = 0.25


def cheapest_overlap(proxy: list[float], device: list[float], fraction: float = CHEAPEST) -> float:
    """Share of the device's cheapest ``fraction`` of cells that the proxy's cheapest ``fraction`` also holds
    (what a proxy bound admitting that fraction keeps of the device bound's cells; ties by position)."""
    k = max(1, round(len(device) * fraction))
    cheap = lambda values: set(sorted(range(len(values)), key=lambda i: (values[i], i))[:k])  # noqa: E731
    return len(cheap(proxy) & cheap(device)) / k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(ROOT.parent / "shared" / "benchmarks" / "nb201_hw_cifar10.csv"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--statistic", default="min")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    table = CostTable.read("nb201", args.table)
    settings = LatencySettings("nb201", "cifar10", "cpu", threads=args.threads, statistic=args.statistic)
    latency, path, cached = latency_table(settings)
    model = CostModel("nb201", "cifar10", PROXIES, latency)
    proxy = {name: [c[name] for c in table_costs(model, table.genotypes)] for name in PROXIES}
    rows = []
    for column in table.columns:
        if not column.endswith(("_latency", "_energy")):
            continue  # eyeriss_arithmetic_intensity is no cost
        device = table.values[column]
        measured = [i for i, v in enumerate(device) if v >= 0]
        row = {"column": column, "cells": len(device), "measured": len(measured)}
        for name in PROXIES:
            mine, theirs = [proxy[name][i] for i in measured], [device[i] for i in measured]
            row[name] = {"spearman": spearman(mine, theirs), "kendall": kendall(mine, theirs),
                         "cheapest_overlap": cheapest_overlap(mine, theirs)}
            if len(measured) < len(device):
                row[name]["spearman_all"] = spearman(proxy[name], device)
        rows.append(row)
    fpga = spearman(table.values["fpga_latency"], table.values["fpga_energy"])
    result = {"fpga_latency_vs_energy_spearman": fpga,
        "table": str(args.table), "sha256": table.sha256, "latency_table": str(path), "latency_table_cached": cached,
        "latency_settings": latency.settings, "rows": rows, "seconds": round(time.time() - started, 1),
        "load_average": os.getloadavg()[0], "torch": torch.__version__, "python": platform.python_version(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (HERE / "device_costs.json").write_text(json.dumps(result, indent=2) + "\n")
    (HERE / "device_costs.md").write_text(report(result))
    print(report(result))


def report(result: dict) -> str:
    """The write-up: one row per device cost, the best proxy in bold."""
    lines = [
        "# Proxy costs against real devices (HW-NAS-Bench, all NAS-Bench-201 cells)",
        "",
        f"`python benchmarks/device_costs.py` ({result['date_utc']}; torch {result['torch']}, Python "
        f"{result['python']}, {result['seconds']:.0f} s, load average {result['load_average']:.1f}). "
        "Raw numbers: `device_costs.json`.",
        "",
        "Data: HW-NAS-Bench (Li et al., *HW-NAS-Bench: Hardware-Aware Neural Architecture Search Benchmark*, "
        "ICLR 2021) measured the latency (ms) and energy (mJ) of every cell of NAS-Bench-201 (Dong and Yang, "
        "*NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search*, ICLR 2020) on CIFAR-10 "
        "on six devices: an edge GPU (Jetson TX2), Raspberry Pi 4, Edge TPU, Pixel 3, the Eyeriss ASIC and an FPGA "
        "(measured on the four commercial devices, estimated for the ASIC and the FPGA). evonas's costs of the same cells: parameters and FLOPs of the deployed "
        "network (C=16, N=5, CIFAR-10 head), exact; CPU latency predicted by evonas's per-op latency table "
        "(torch backend, batch 1, one thread, minimum of 25 repeats) measured on this machine (x86-64, 2 shared "
        "cores). Rank statistics over all cells the device has a measurement of (`evonas.correlating.stats`: "
        "Spearman rho, Kendall tau-b, ties averaged).",
        "",
        "| device cost | cells measured | params rho / tau / cheap | FLOPs rho / tau / cheap | "
        "CPU latency rho / tau / cheap |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        best = max(PROXIES, key=lambda n: row[n]["spearman"])
        cells = []
        for name in PROXIES:
            text = f"{row[name]['spearman']:.3f} / {row[name]['kendall']:.3f} / {row[name]['cheapest_overlap']:.0%}"
            cells.append(f"**{text}**" if name == best else text)
        unit = cost_unit(row["column"])
        lines.append(f"| {row['column']} ({unit}) | {row['measured']:,} of {row['cells']:,} | " + " | ".join(cells) + " |")
    partial = [r for r in result["rows"] if r["measured"] < r["cells"]]
    lines += ["", f"Best proxy (by Spearman) per row in bold. *cheap*: of the {CHEAPEST:.0%} of cells the device "
              f"runs cheapest, the share that the proxy's cheapest {CHEAPEST:.0%} also holds (what a proxy bound "
              "admitting a quarter of the space keeps of the device bound's quarter).",
              f"fpga_energy ranks cells as fpga_latency does (Spearman {result['fpga_latency_vs_energy_spearman']:.4f} "
              "between the two columns), so their rows match.", ""]
    for row in partial:
        alls = ", ".join(f"{PROXY_NAMES[n]} {row[n]['spearman_all']:.3f}" for n in PROXIES)
        lines.append(f"{row['column']} has no measurement (-1) of {row['cells'] - row['measured']:,} cells; "
                     f"ranked with those -1 entries as if they were costs, Spearman is {alls}.")
    enough = {r["column"]: [PROXY_NAMES[n] for n in PROXIES if r[n]["spearman"] >= ENOUGH] for r in result["rows"]}
    lines += ["", f"## When is a proxy enough? (Spearman >= {ENOUGH})", ""]
    for column, names in enough.items():
        lines.append(f"- {column}: " + (", ".join(names) if names else
                                        f"no proxy; search with the measured table: `--cost-table TABLE "
                                        f"--max-cost {column}=...` or `--objectives sweet,{column}`"))
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
