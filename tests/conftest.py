"""Shared fixtures: paths into ../shared (skipped with a reason when absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from search_fakes import FakeScorer

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EVONAS_SHARED", ROOT.parent / "shared"))

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} is absent")
    return SHARED


@pytest.fixture(scope="session")
def cifar_dir(shared_dir: Path) -> Path:
    """Folder holding cifar-10-batches-py/ (the shared CIFAR-10 subset)."""
    path = shared_dir / "data"
    if not (path / "cifar-10-batches-py").is_dir():
        pytest.skip(f"CIFAR-10 not found under {path}")
    return path


@pytest.fixture(scope="session")
def nb201_truth(shared_dir: Path) -> Path:
    path = shared_dir / "benchmarks" / "nb201_accuracy.csv"
    if not path.is_file():
        pytest.skip(f"NAS-Bench-201 table {path} is absent")
    return path


@pytest.fixture(scope="session")
def nb201_reference(shared_dir: Path) -> Path:
    path = shared_dir / "benchmarks" / "nb201_reference_proxies_cifar10.csv"
    if not path.is_file():
        pytest.skip(f"reference proxy table {path} is absent")
    return path


@pytest.fixture(autouse=True)
def fresh_fake_scorer():
    """Every test starts with no recorded FakeScorer calls and no NaN keys (the fake keeps class state)."""
    FakeScorer.calls = []
    FakeScorer.nan_keys = set()
    yield
    FakeScorer.nan_keys = set()
