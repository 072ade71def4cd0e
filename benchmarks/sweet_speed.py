"""Sweetimator scoring speed on NB-201: evonas's scoring path against a minimal plain PyTorch loop.

Both sides score the same seeded-random cells with the same batch (64 images by default),
the same seeded weights and the same interval, one cell after the other in this process,
alternating which side goes first so machine load hits both alike. The plain loop is what
one would write by hand: build, forward, ``loss.backward()``, count. The two must give the
same counts (checked), so the time difference is pure overhead or saved waste.

    python benchmarks/sweet_speed.py --data-dir ../shared/data --cells 60

Writes ``benchmarks/sweet_speed.json`` and ``benchmarks/sweet_speed.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import search_spaces
from evonas.data import load_dataset
from evonas.scoring import Scorer
from evonas.seeding import init_seed
from evonas.settings import ScoringSettings

HERE = Path(__file__).resolve().parent
INTERVAL = (1e-4, 5e-4)


def plain_score(space, genotype: str, num_classes: int, options: dict, seed: int,
                images: torch.Tensor, labels: torch.Tensor) -> int:
    """Sweetimator written directly in PyTorch, with the same seeded init as evonas."""
    graph = space.from_str(genotype)
    torch.manual_seed(init_seed(seed, space.canonical_key(graph)))
    model = space.build(graph, num_classes, **options)
    model.train()
    F.cross_entropy(model(images), labels).backward()
    lo, hi = INTERVAL
    count = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None:
            g = m.weight.grad.abs()
            count += int(((g >= lo) & (g < hi)).sum())
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=HERE / "sweet_speed")
    parser.add_argument("--note", default="", help="Free text recorded with the result (e.g. machine load).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_dataset(args.dataset, split="train", data_dir=args.data_dir)
    config = ScoringSettings("nb201", "sweet", {"interval": INTERVAL}, dataset=args.dataset,
                           data_dir=args.data_dir, batch_size=args.batch_size, seed=args.seed)
    scorer = Scorer(config, dataset=data)
    images, labels = scorer.batches(0)[0]  # the plain loop gets the very same batch
    space = search_spaces.get("nb201")
    rng = random.Random(args.seed)
    cells = [space.to_str(space.sample(rng)) for _ in range(args.cells + 2)]

    def ours(g: str) -> float:
        result = scorer.score(g)
        assert result.ok, result.error
        return result.score

    def plain(g: str) -> float:
        return plain_score(space, g, data.num_classes, scorer.build_options, args.seed, images, labels)

    for g in cells[:2]:  # warm-up, untimed
        ours(g), plain(g)
    load_before = os.getloadavg()
    seconds = {"evonas": 0.0, "plain": 0.0}
    cpu_seconds = dict(seconds)  # this process's CPU time: less disturbed by other load than wall time
    mismatches = 0
    paired = []  # per-cell plain/evonas wall-time ratio: its median shrugs off load spikes
    for i, g in enumerate(cells[2:]):
        order = [("evonas", ours), ("plain", plain)]
        scores, wall = {}, {}
        for name, fn in order if i % 2 == 0 else order[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            scores[name] = fn(g)
            wall[name] = time.perf_counter() - start
            seconds[name] += wall[name]
            cpu_seconds[name] += time.process_time() - start_cpu
        mismatches += scores["evonas"] != scores["plain"]
        paired.append(wall["plain"] / wall["evonas"])
    load_after = os.getloadavg()

    rate = {k: args.cells / v for k, v in seconds.items()}
    cpu_rate = {k: args.cells / v for k, v in cpu_seconds.items()}
    record = {
        "cells": args.cells, "batch_size": args.batch_size, "seed": args.seed, "threads": args.threads,
        "dataset": data.name, "interval": list(INTERVAL), "device": "cpu",
        "cells_per_s": rate, "seconds": seconds, "ratio_evonas_over_plain": rate["evonas"] / rate["plain"],
        "cells_per_cpu_s": cpu_rate, "cpu_seconds": cpu_seconds,
        "cpu_ratio_evonas_over_plain": cpu_rate["evonas"] / cpu_rate["plain"],
        "median_per_cell_ratio": statistics.median(paired),
        "score_mismatches": mismatches, "loadavg_before": load_before, "loadavg_after": load_after,
        "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__, "python": platform.python_version(), "note": args.note,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {rate[k]:.3f} | {seconds[k]:.1f} | {cpu_rate[k]:.3f} |" for k in ("evonas", "plain"))
    text = f"""# Sweetimator scoring speed (NB-201, in-process)

`python benchmarks/sweet_speed.py --cells {args.cells} --batch-size {args.batch_size} --seed {args.seed} --threads {args.threads}`
({record['date']}, {data.name} data, CPU, {args.threads} torch thread(s), torch {torch.__version__},
{os.cpu_count()} cores; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after).
{args.note}

| path | cells/s (wall) | wall seconds for {args.cells} cells | cells per CPU second |
| --- | --- | --- | --- |
{rows}

**evonas / plain = {record['ratio_evonas_over_plain']:.2f}x** in wall time,
{record['cpu_ratio_evonas_over_plain']:.2f}x in CPU time, median per-cell ratio
{record['median_per_cell_ratio']:.2f}x (target >= 1.0x); score mismatches: {mismatches}.

Both sides build the same seeded network for each cell and score the same fixed batch; the
order alternates per cell. evonas's path (`Scorer.score`: parse, canonical key, seeded build,
`sweet` estimator) asks autograd only for the Conv2d/Linear weight gradients (BatchNorm and
bias parameters are switched off during the pass, then restored) and counts on one flat
tensor; the plain loop runs `loss.backward()` over every parameter and counts per layer.
`none` edges and edges that cannot reach the cell output compute nothing in either (the
NB-201 builder skips them), and the batch is drawn once, not per cell.
"""
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
