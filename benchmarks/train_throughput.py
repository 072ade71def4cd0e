"""Training throughput: our loop (evonas.training.Trainer) against a minimal plain PyTorch loop.

Both train identical copies of the same model (an NB-201 cell at the 200E recipe's C=16, N=5)
with the same SGD settings on batches from the same ``iterate_batches`` (random crop + flip),
in alternating rounds within one process, so machine load hits both alike. The number is
images per second of the whole training step including augmentation; the target is
ours / plain >= 0.95.

    python benchmarks/train_throughput.py                       # CPU, batch 64 and 128
    python benchmarks/train_throughput.py --device cuda         # on a GPU (ours adds AMP + channels-last)
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

import search_spaces
from evonas.data import iterate_batches, load_dataset
from evonas.recipes import resolve_recipe
from evonas.training import Trainer, select_device

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
HERE = Path(__file__).resolve().parent


def plain_loop(model: torch.nn.Module, recipe, device: torch.device) -> Callable[[list], None]:
    """The reference: forward, cross-entropy, backward, SGD step; nothing else."""
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)

    def run(batches) -> None:
        model.train()
        for x, y in batches:
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run


def our_loop(model: torch.nn.Module, recipe, device: torch.device) -> Callable[[list], None]:
    trainer = Trainer(model, recipe, device)
    epoch = iter(range(10**9))
    return lambda batches: trainer.train_epoch(next(epoch), batches)


def measure(batch_size: int, args: argparse.Namespace, device: torch.device) -> dict:
    recipe = resolve_recipe(search_spaces.get("nb201"), {"batch_size": batch_size, "epochs": 10**6})
    space = search_spaces.get("nb201")
    data = load_dataset(args.dataset, "train", data_dir=args.data_dir)
    data = data.subset(min(len(data), batch_size * args.batches))
    if device.type == "cuda":
        data = data.to(device)
    torch.manual_seed(0)
    base = space.build(space.from_str(CELL), data.num_classes, **space.training_options(recipe.to_dict()))
    loops = {"plain": plain_loop(copy.deepcopy(base).to(device), recipe, device),
             "ours": our_loop(copy.deepcopy(base), recipe, device)}
    gen = torch.Generator().manual_seed(0)
    rates: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in loops}
    for round_ in range(args.rounds + 1):  # round 0 warms up (allocator, cuDNN autotune)
        order = list(loops) if round_ % 2 == 0 else list(reversed(loops))
        for name in order:
            batches = iterate_batches(data, batch_size, gen, shuffle=True, augment=True, device=device)
            wall, cpu = time.perf_counter(), time.process_time()
            loops[name](batches)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if round_:
                rates[name]["wall"].append(len(data) / wall)
                rates[name]["cpu"].append(len(data) / cpu)
    row = {"batch_size": batch_size, "images_per_round": len(data), "rounds": args.rounds}
    for clock in ("wall", "cpu"):
        ours, plain = rates["ours"][clock], rates["plain"][clock]
        row[clock] = {
            "ours_images_per_s": statistics.median(ours), "plain_images_per_s": statistics.median(plain),
            # each round times both loops back to back, so the paired ratio cancels most load swings
            "ratio": statistics.median(o / p for o, p in zip(ours, plain)),
            "ours_all": ours, "plain_all": plain,
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batches", type=int, default=2, help="batches per timed round")
    parser.add_argument("--rounds", type=int, default=8, help="timed rounds per loop (alternating)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--dataset", default="synthetic", help="images only matter for their shape")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=HERE / "train_throughput")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    rows = [measure(bs, args, device) for bs in args.batch_sizes]
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU"
    record = {"device": machine, "threads": args.threads, "torch": torch.__version__, "cell": CELL,
              "network": "NB-201, C=16, N=5 (200E recipe)", "augmentation": "random crop (pad 4) + flip",
              "precision_ours": Trainer(torch.nn.Linear(1, 1), resolve_recipe(search_spaces.get("nb201")), device).precision,
              "rows": rows}
    lines = ["| batch | clock | ours (img/s) | plain (img/s) | ours/plain |", "|---:|---|---:|---:|---:|"]
    lines += [f"| {r['batch_size']} | {clock} | {r[clock]['ours_images_per_s']:.1f} | "
              f"{r[clock]['plain_images_per_s']:.1f} | {r[clock]['ratio']:.3f} |"
              for r in rows for clock in ("wall", "cpu")]
    print(f"device: {machine}, {args.threads} thread(s), torch {torch.__version__}")
    print("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(
        f"# Training throughput: our loop vs a plain PyTorch loop\n\n"
        f"`{' '.join(['python benchmarks/train_throughput.py', *sys.argv[1:]])}`\n\n"
        f"Model: {record['network']}, cell `{CELL}`; SGD Nesterov 0.9, wd 5e-4; {record['augmentation']} "
        f"from `evonas.data.iterate_batches` for both loops. Device: {machine}, {args.threads} torch thread(s), "
        f"torch {torch.__version__}. Each of {args.rounds} rounds (after one warm-up round) times both loops back "
        f"to back over {args.batches} batches, in alternating order; rates are medians over rounds and the ratio "
        f"is the median of the per-round ratios. `wall` is images per wall-clock second, `cpu` images per "
        f"CPU-second of this process (robust to other processes' load on a shared machine).\n\n" + "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
