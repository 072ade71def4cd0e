"""fisher and zen before and after their fixes, on NAS-Bench-201 / CIFAR-10.

Two seeded samples, scored on one core:

* ``--cells`` cells of the NAS-Bench-Suite-Zero table (its 9,445 cells where every op
  reaches the output): fisher as it was (each channel's value summed once) and as shipped
  (broadcast over the channel's weights), and zen with three BatchNorm statistics: the
  batch variance (the old code; log 0 fails), the batch variance leaving zero-variance BN
  layers out ("skip"), and ``running_var`` after the two train-mode passes (shipped).
  Spearman against the table's own ``fisher`` / ``zen`` column and against ``cifar10_test``.
* ``--nb201-cells`` cells of all 15,625 NB-201 cells, zen only: the Suite-Zero table holds
  no cell with a conv reading an all-zero node, so the failures the zen fix is about only
  show here. Failure rate per variant, split by the cell's structure, and Spearman against
  ``cifar10_test``.

The three zen variants are read off the same two forward passes (``estimators.zen.zen_terms``);
the shipped estimators are checked to give the same numbers on the first cells. Writes
``benchmarks/fisher_zen.md``.

    nice .venv/bin/python benchmarks/fisher_zen.py                      # 200 + 300 cells, batch 32
    .venv/bin/python benchmarks/fisher_zen.py --cells 20 --nb201-cells 20 --out /tmp/x.md   # smoke run

Data: NAS-Bench-201 / NATS-Bench accuracies (Dong et al.), NAS-Bench-Suite-Zero proxy scores
(Krishnakumar et al., 2022), CIFAR-10 (Krizhevsky, 2009), all from ../shared.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import pickle
import random
import sys
import time
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn

import estimators
import search_spaces
from estimators._torch_utils import forward_hooks, preserved, scored_layers
from estimators.fisher import channel_fisher
from estimators.zen import ZenTerms, zen_terms

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EVONAS_SHARED", ROOT.parent / "shared"))
CIFAR_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR_STD = (0.24703233, 0.24348505, 0.26158768)
MIXUP_GAMMA, ZEN_SEED = 1e-2, 0
#: How many cells of each sample are also scored through the registered estimators, as a check.
CHECK_CELLS = 5


# ---- data -----------------------------------------------------------------------------------
def cifar_batch(shared: Path, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` seeded images of data_batch_1, normalised with the usual CIFAR-10 mean/std."""
    with (shared / "data" / "cifar-10-batches-py" / "data_batch_1").open("rb") as f:
        raw = pickle.load(f, encoding="bytes")
    idx = np.random.RandomState(seed).choice(len(raw[b"labels"]), size, replace=False)
    images = torch.tensor(np.asarray(raw[b"data"])[idx], dtype=torch.float32).view(size, 3, 32, 32) / 255
    images = (images - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return images, torch.tensor(np.asarray(raw[b"labels"])[idx], dtype=torch.long)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ---- cell structure (why a cell fails) ------------------------------------------------------------
def cell_kind(arch: str) -> str:
    """``independent`` (no path of real ops from input to output), ``zero_read`` (a live conv
    reads a node that nothing writes, so its BN sees a constant) or ``plain``."""
    ops = {}
    for j, group in enumerate(arch.strip()[1:-1].split("|+|"), start=1):
        for i, entry in enumerate(group.split("|")):
            ops[i, j] = entry.split("~")[0]
    live = {3}
    for j in (3, 2, 1):
        if j in live:
            live.update(i for i in range(j) if ops[i, j] != "none")
    written, depends = {0}, {0}
    zero_read = False
    for j in (1, 2, 3):
        for i in range(j):
            op = ops[i, j]
            if j not in live or op == "none":
                continue
            if "conv" in op:  # a conv makes a tensor (BN's output) even from nothing
                zero_read |= i not in written
                written.add(j)
            elif i in written:
                written.add(j)
            if i in depends:
                depends.add(j)
    return "independent" if 3 not in depends else ("zero_read" if zero_read else "plain")


# ---- the scores -------------------------------------------------------------------------------
def fisher_old(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The definition before the fix: every channel's Delta_k summed once (no fan-in factor)."""
    acts: list[torch.Tensor] = []
    with preserved(model), forward_hooks(scored_layers(model), lambda _m, _i, out: acts.append(out)):
        loss = F.cross_entropy(model(images), labels)
        grads = torch.autograd.grad(loss, acts, allow_unused=True)
    return float(sum(channel_fisher(a.detach(), g).sum().item() for a, g in zip(acts, grads) if g is not None))


def zen_variants(terms: ZenTerms) -> dict[str, float]:
    """The three BN statistics on the same forward passes; non-finite means 'failed'."""
    if not terms.delta > 0:
        return {"zen_batch": math.nan, "zen_skip": math.nan, "zen_running": math.nan}

    def log_std(v: float) -> float:
        return 0.5 * math.log(v) if v > 0 else -math.inf

    called = [v for v in terms.batch_var if v is not None]
    base = math.log(terms.delta)
    return {
        "zen_batch": base + sum(log_std(v) for v in called),
        "zen_skip": base + sum(log_std(v) for v in called if v > 0),
        "zen_running": base + sum(log_std(v) for v in terms.running_var if v is not None),
    }


def cell_seed(seed: int, arch: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(arch.encode())) % 2**31


def score_cells(rows: Sequence[dict[str, str]], batch: tuple[torch.Tensor, torch.Tensor], seed: int,
                with_fisher: bool, label: str) -> list[dict[str, float]]:
    """Per cell: the zen variants (and fisher old/new), with a check against the estimators."""
    space = search_spaces.get("nb201")
    fisher_est, zen_est = estimators.get("fisher"), estimators.get("zen", mixup_gamma=MIXUP_GAMMA, seed=ZEN_SEED)
    out = []
    start = time.perf_counter()
    for n, row in enumerate(rows):
        torch.manual_seed(cell_seed(seed, row["arch"]))
        model = space.build(space.from_str(row["arch"]), 10, **space.proxy_options()).train()
        scores = zen_variants(zen_terms(model, batch[0].shape, MIXUP_GAMMA, ZEN_SEED))
        if with_fisher:
            new = fisher_est.evaluate(model, [batch])
            scores["fisher_new"] = new.score if new.ok else math.nan
            scores["fisher_old"] = fisher_old(model, *batch)
        if n < CHECK_CELLS:  # the shipped zen is the running-variance variant, to rounding
            shipped = zen_est.evaluate(model, [batch])
            same = (not shipped.ok and not math.isfinite(scores["zen_running"])) or (
                shipped.ok and math.isclose(shipped.score, scores["zen_running"], rel_tol=1e-9, abs_tol=1e-9))
            if not same:
                raise SystemExit(f"zen estimator {shipped} != running variant {scores['zen_running']} on {row['arch']}")
        scores["kind"] = cell_kind(row["arch"])
        out.append(scores)
        if (n + 1) % 25 == 0:
            print(f"  {label}: {n + 1}/{len(rows)} cells, {time.perf_counter() - start:.0f}s", file=sys.stderr)
    return out


# ---- statistics -------------------------------------------------------------------------------
def rho(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, int]:
    """Spearman over the pairs where both are finite, and how many pairs that was."""
    pairs = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3:
        return math.nan, len(pairs)
    return float(spearmanr(*zip(*pairs)).statistic), len(pairs)


def fmt(value: tuple[float, int], total: int) -> str:
    r, n = value
    return f"{r:.3f}" + ("" if n == total else f" (n={n})")


def failure_rate(values: Sequence[float], keep: Callable[[int], bool] = lambda _i: True) -> str:
    chosen = [v for i, v in enumerate(values) if keep(i)]
    failed = sum(not math.isfinite(v) for v in chosen)
    return f"{failed}/{len(chosen)} ({100 * failed / len(chosen):.1f}%)" if chosen else "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=200, help="cells sampled from the Suite-Zero table")
    parser.add_argument("--nb201-cells", type=int, default=300, help="cells sampled from all NB-201 cells (zen)")
    parser.add_argument("--batch", type=int, default=32, help="CIFAR-10 images per batch (fisher) / input shape (zen)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "fisher_zen.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    bench = args.shared / "benchmarks"
    if not (bench / "nb201_reference_proxies_cifar10.csv").is_file():
        raise SystemExit(f"needs the shared data folder with benchmarks/ and data/ (looked in {args.shared}); "
                         "pass --shared or set EVONAS_SHARED")

    truth = {r["arch"]: float(r["cifar10_test"]) for r in read_rows(bench / "nb201_accuracy.csv")}
    ref_rows = random.Random(args.seed).sample(read_rows(bench / "nb201_reference_proxies_cifar10.csv"), args.cells)
    all_rows = random.Random(args.seed + 1).sample(
        [{"arch": a} for a in truth], args.nb201_cells)
    batch = cifar_batch(args.shared, args.batch, args.seed)

    t0 = time.perf_counter()
    ref_scores = score_cells(ref_rows, batch, args.seed, True, "Suite-Zero sample")
    t1 = time.perf_counter()
    all_scores = score_cells(all_rows, batch, args.seed, False, "NB-201 sample")
    t2 = time.perf_counter()

    acc_ref = [truth[r["arch"]] for r in ref_rows]
    acc_all = [truth[r["arch"]] for r in all_rows]
    col = {name: [s[name] for s in ref_scores] for name in ("fisher_old", "fisher_new", "zen_batch", "zen_skip", "zen_running")}
    col_all = {name: [s[name] for s in all_scores] for name in ("zen_batch", "zen_skip", "zen_running")}
    kinds = [s["kind"] for s in all_scores]
    n_ref, n_all = len(ref_rows), len(all_rows)
    ref_fisher = [float(r["fisher"]) for r in ref_rows]
    ref_zen = [float(r["zen"]) if float(r["zen"]) > -1e7 else math.nan for r in ref_rows]  # -1e8 marks its failures

    lines = [
        "# fisher and zen: before and after the fixes",
        "",
        "Command (one core, `torch.set_num_threads(1)`):",
        "",
        "```",
        f"nice .venv/bin/python benchmarks/fisher_zen.py --cells {args.cells} --nb201-cells {args.nb201_cells} "
        f"--batch {args.batch} --seed {args.seed}",
        "```",
        "",
        f"CIFAR-10 batch: {args.batch} seeded images of `data_batch_1`; weights seeded per cell; NB-201 models as "
        f"`search_spaces.get('nb201').build(graph, 10, **proxy_options())`, train mode; zen with "
        f"mixup_gamma {MIXUP_GAMMA}, seed {ZEN_SEED}. Took {t1 - t0:.0f}s + {t2 - t1:.0f}s.",
        "",
        f"## Suite-Zero sample: {n_ref} cells of `nb201_reference_proxies_cifar10.csv` (seed {args.seed})",
        "",
        "Spearman; `(n=...)` where some cells failed and were left out.",
        "",
        "| score | vs reference column | vs cifar10_test | failed |",
        "| --- | --- | --- | --- |",
    ]
    for name, ref in (("fisher_old", ref_fisher), ("fisher_new", ref_fisher),
                      ("zen_batch", ref_zen), ("zen_skip", ref_zen), ("zen_running", ref_zen)):
        lines.append(f"| {name} | {fmt(rho(col[name], ref), n_ref)} | {fmt(rho(col[name], acc_ref), n_ref)} | "
                     f"{failure_rate(col[name])} |")
    lines += [
        f"| reference `fisher` column | - | {fmt(rho(ref_fisher, acc_ref), n_ref)} | - |",
        f"| reference `zen` column | - | {fmt(rho(ref_zen, acc_ref), n_ref)} | - |",
        "",
        f"## All-NB-201 sample: {n_all} of the 15,625 cells (seed {args.seed + 1}), zen only",
        "",
        f"Cell structure in this sample: {kinds.count('plain')} plain, {kinds.count('zero_read')} with a live conv "
        f"reading an all-zero node, {kinds.count('independent')} whose output does not depend on the input.",
        "",
        "| variant | failed (all) | failed (zero-read cells) | failed (input-independent) | vs cifar10_test |",
        "| --- | --- | --- | --- | --- |",
    ]
    common = [i for i in range(n_all) if all(math.isfinite(col_all[v][i]) for v in col_all)]
    for name, values in col_all.items():
        lines.append(
            f"| {name} | {failure_rate(values)} | {failure_rate(values, lambda i: kinds[i] == 'zero_read')} | "
            f"{failure_rate(values, lambda i: kinds[i] == 'independent')} | {fmt(rho(values, acc_all), n_all)} |")
    ok_both = [i for i in range(n_all) if math.isfinite(col_all["zen_skip"][i]) and math.isfinite(col_all["zen_running"][i])]
    zero_read_ok = [i for i in ok_both if kinds[i] == "zero_read"]
    lines += [
        "",
        f"On the {len(common)} cells where all three variants succeed: "
        + ", ".join(f"{v} {rho([col_all[v][i] for i in common], [acc_all[i] for i in common])[0]:.3f}" for v in col_all)
        + ". Skip vs running on the zero-read cells only "
        f"(n={len(zero_read_ok)}): "
        + ", ".join(f"{v} {rho([col_all[v][i] for i in zero_read_ok], [acc_all[i] for i in zero_read_ok])[0]:.3f}"
                    for v in ("zen_skip", "zen_running"))
        + f"; the two variants agree at Spearman {rho([col_all['zen_skip'][i] for i in ok_both], [col_all['zen_running'][i] for i in ok_both])[0]:.3f}.",
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        existing = args.out.read_text() if args.out.is_file() else ""
        marker = "\n## Conclusion"
        tail = existing[existing.index(marker):] if marker in existing else ""
        args.out.write_text(table + "\n" + tail)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
