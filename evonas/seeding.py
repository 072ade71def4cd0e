"""Every seed evonas derives, by name: one function per use, all from the run's one ``--seed``.

A derived seed is a hash of the run seed and a purpose (plus what it is for: a cell's key,
an evaluation id), so it is the same in every process, on every worker and after a resume,
and two purposes never share a stream. Pure Python: no torch, no numpy.
"""
from __future__ import annotations

import hashlib
from typing import Any


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed from any printable parts, identical across processes and runs."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def init_seed(seed: int, key: str) -> int:
    """Weights of a scored (or calibrated) network: isomorphic cells get identical weights."""
    return stable_seed(seed, "init", key)


def batches_seed(seed: int, eval_id: int | None = None) -> int:
    """The estimator's batches: the fixed ones (``eval_id`` None) or evaluation ``eval_id``'s fresh ones."""
    return stable_seed(seed, "batches") if eval_id is None else stable_seed(seed, "batches", eval_id)


def calibration_sample_seed(seed: int, space: str) -> int:
    """Which cells a space without a benchmark order calibrates on."""
    return stable_seed(seed, "calibration", space)


def resume_seed(seed: int, evaluations: int) -> int:
    """The evolution's RNG after a resume that replayed lines past the checkpoint."""
    return stable_seed(seed, "resume", evaluations)


def train_init_seed(seed: int, key: str) -> int:
    """Weights of a network trained for real."""
    return stable_seed(seed, "train-init", key)


def train_data_seed(seed: int, key: str) -> int:
    """Shuffling and augmentation of a training."""
    return stable_seed(seed, "train-data", key)
