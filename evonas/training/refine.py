"""A training-refined head: train a search run's best distinct cells briefly and keep the best by accuracy.

Zero-cost estimators rank the whole space well and its head less well, and a user takes one cell.
``refine_run`` trains the run's top K cells (under the run's constraints: infeasible cells were
never scored, so never ranked) with the space's recipe for a few epochs, in parallel on Ray tasks
like ``evonas train``, and returns the cell with the best short-training test accuracy. With
``halving`` it is successive halving: after each round the better half goes on with twice the
epochs (trained from scratch, so each round is a plain recipe), until two or fewer remain.

Everything lands in the run folder: ``refine/round<r>/<rank>-<key hash>/`` (ordinary training
folders) and ``refine.json`` (rounds, accuracies, the chosen cell, seconds), rewritten after every
round. A rerun with the same settings resumes: finished trainings are read back, half-done ones
continue from their checkpoint. Short training is itself a proxy: the accuracies it compares come
from a few epochs, and they are measured on the dataset's test split (as ``evonas train`` reports),
so on a benchmark that split has no other use; on your own data keep a separate test set.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from evonas.errors import EvonasError
from evonas.runs import RunRecord, write_atomic
from evonas.settings import load_json
from evonas.training.top import top_genotypes, train_candidates
from evonas.training.trainer import TrainProgress

REFINE_FILE = "refine.json"
REFINE_DIR = "refine"


def refine_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / REFINE_FILE


def read_refinement(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``refine.json`` (None when it was never refined)."""
    path = refine_path(run_dir)
    return load_json(path) if path.is_file() else None


def refine_run(
    run_dir: str | Path,
    top: int,
    epochs: int,
    *,
    halving: bool = False,
    overrides: Mapping[str, Any] | None = None,
    workers: int | None = None,
    address: str | None = None,
    device: str | None = None,
    progress: TrainProgress | None = None,
) -> dict[str, Any]:
    """Train the run's ``top`` best distinct cells for ``epochs`` (doubling per halving round); the record.

    ``overrides`` are recipe settings besides the epochs (``train_images``, ``batch_size``, ...).
    """
    if top < 1 or epochs < 1:
        raise EvonasError(f"--refine-top and --refine-epochs must be at least 1, not {top} and {epochs}")
    record = RunRecord.open(run_dir)
    settings = {"top": top, "epochs": epochs, "halving": halving,
                "overrides": {k: v for k, v in (overrides or {}).items() if v is not None}}
    earlier = read_refinement(run_dir)
    if earlier is not None and earlier.get("settings") != settings:
        raise EvonasError(f"{refine_path(run_dir)} was made with other settings ({earlier.get('settings')}); "
                          f"refine with those to resume it, or delete {REFINE_DIR}/ and {REFINE_FILE} first")
    survivors = top_genotypes(run_dir, top)
    rounds: list[dict[str, Any]] = []
    round_epochs = epochs
    while True:
        results = train_candidates(record, survivors, record.path / REFINE_DIR / f"round{len(rounds)}",
                                   {**settings["overrides"], "epochs": round_epochs}, resume=True, workers=workers,
                                   address=address, device=device, progress=progress)
        ranked = sorted(zip(survivors, results), key=lambda cr: (-cr[1]["test_accuracy"], cr[0]["rank"]))
        rounds.append({"epochs": round_epochs, "cells": [
            {"rank": c["rank"], "genotype": c["genotype"], "key": c["key"], "score": c["score"],
             "accuracy": r["test_accuracy"], "seconds": r["wall_seconds"], "out_dir": r["out_dir"]}
            for c, r in ranked]})
        chosen = dict(rounds[-1]["cells"][0])
        done = not halving or len(survivors) <= 2
        summary = {"settings": settings, "rounds": rounds, "chosen": chosen, "complete": done,
                   "training_seconds": sum(cell["seconds"] for r in rounds for cell in r["cells"])}
        write_atomic(refine_path(run_dir), summary)
        if done:
            return summary
        survivors = [c for c, _ in ranked[: math.ceil(len(ranked) / 2)]]
        round_epochs *= 2
