"""Shared by the executor tests: a tiny scoring config, genotypes, a free port, draining results."""
from __future__ import annotations

import random
import socket

import search_spaces
from evonas.settings import ScoringSettings

CONFIG = ScoringSettings(
    space="nb201",
    estimator="sweet",
    estimator_settings={"interval": (1e-4, 5e-4)},
    dataset="synthetic",
    batch_size=8,
    build_options={"channels": 4, "cells_per_stage": 1},
)


def genotypes(n: int, seed: int = 0) -> list[str]:
    space = search_spaces.get("nb201")
    rng = random.Random(seed)
    return [space.to_str(space.sample(rng)) for _ in range(n)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drain(executor) -> list:
    """Every pending result; fails instead of hanging when results stop coming."""
    results = []
    while executor.pending():
        batch = executor.wait(timeout=120)
        assert batch, f"no result within 120 s with {executor.pending()} jobs pending"
        results.extend(batch)
    return results
