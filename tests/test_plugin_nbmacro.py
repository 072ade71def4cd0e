"""The NAS-Bench-Macro example plug-in (examples/nbmacro): installed by pip, found by entry point.

The package is pip-installed once into a folder of its own (the venv stays clean) and every CLI
step runs in a subprocess with only ``PYTHONPATH`` pointing there, so evonas must discover the
space through the ``evonas.search_spaces`` entry point, in the driver and in its Ray workers.
"""
from __future__ import annotations

import ast
import collections
import csv
import importlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import torch
from torch import nn

import search_spaces
from evonas.execution.ray_session import RAY_ENV
from search_spaces import GenotypeError, SearchSpace

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = ROOT / "examples" / "nbmacro"
EVONAS = [sys.executable, "-m", "evonas.cli"]
ACCURACY = "test_accuracy"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install`` of the example into its own folder (from a copy: pip builds beside the sources)."""
    src = tmp_path_factory.mktemp("nbmacro_src") / "nbmacro"
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path_factory.mktemp("nbmacro_site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--disable-pip-version-check", "--target", str(target), str(src)],
                   check=True, capture_output=True, timeout=240)
    return target


@pytest.fixture(scope="module")
def space(site: Path) -> Iterator[SearchSpace]:
    """The space as the registry finds it once the package is importable (the registry forgets it afterwards)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        importlib.invalidate_caches()
        search_spaces.reload_entry_points()
        assert search_spaces.origin("nbmacro") == "plug-in"
        yield search_spaces.get("nbmacro")
    for name in [m for m in sys.modules if m.split(".")[0] == "evonas_nbmacro"]:
        del sys.modules[name]
    importlib.invalidate_caches()
    search_spaces.reload_entry_points()


@pytest.fixture(scope="module")
def env(site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A subprocess environment that sees the plug-in only through PYTHONPATH, with a private cache."""
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **RAY_ENV, "PYTHONPATH": path, "EVONAS_CACHE": str(tmp_path_factory.mktemp("cache")),
            "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


@pytest.fixture(scope="module")
def table(shared_dir: Path) -> list[dict[str, str]]:
    path = shared_dir / "benchmarks" / "nbmacro_cifar10.csv"
    if not path.is_file():
        pytest.skip(f"NAS-Bench-Macro table {path} is absent")
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def evonas(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    """``evonas ARGS`` in a subprocess; its stdout, after checking it succeeded."""
    done = subprocess.run([*EVONAS, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# ---- the space itself ----------------------------------------------------------------------------
def test_plugin_imports_only_the_public_space_api():
    """A third-party space needs ``search_spaces`` (its top level) and torch/networkx, never evonas."""
    allowed = {"search_spaces", "torch", "networkx", "evonas_nbmacro", "__future__", *sys.stdlib_module_names}
    for path in (PLUGIN_SRC / "evonas_nbmacro").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
                assert not name.startswith("search_spaces."), f"{path.name} imports {name}, not the public API"


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_builder_reproduces_the_parameters_of_every_table_row(space, table, monkeypatch):
    """Every row from the builder's own layers; a seeded sample of rows also as whole networks.

    A layer's modules depend only on its position and choice, so the 3 uniform networks hold all
    24 (position, choice) layers; building all 6,561 networks would take ~20 CPU-seconds.
    """
    for cls in (nn.Conv2d, nn.Linear, nn.BatchNorm2d):  # counts do not depend on the initial values
        monkeypatch.setattr(cls, "reset_parameters", lambda self: None)
    assert len(table) == space.size() == 6561
    with torch.device("meta"):
        uniform = {d: space.build(space.from_str(d * 8), 10) for d in "012"}
        layer = {(i, d): _params(unit) for d, net in uniform.items() for i, unit in enumerate(space.depth_units(net))}
        [fixed] = {_params(net) - sum(layer[i, d] for i in range(8)) for d, net in uniform.items()}
        wrong = [row["arch"] for row in table
                 if fixed + sum(layer[i, d] for i, d in enumerate(row["arch"])) != int(row["params"])]
        wrong += [row["arch"] for row in random.Random(0).sample(table, 400)
                  if _params(space.build(space.from_str(row["arch"]), 10)) != int(row["params"])]
    assert not wrong, f"{len(wrong)} networks with the wrong parameter count, e.g. {wrong[:5]}"


def test_canonical_key_groups_exactly_the_rows_the_benchmark_trained_once(space, table):
    rows_by_key = collections.defaultdict(set)
    for row in table:
        assert space.to_str(space.from_str(row["arch"])) == row["arch"]
        rows_by_key[space.str_key(row["arch"])].add(tuple(row[c] for c in (ACCURACY, "test_accuracy_std", "params")))
    assert len(rows_by_key) == 3969
    assert all(len(rows) == 1 for rows in rows_by_key.values())
    # the fastest-looking genotype and its stage-3 twin are one network; a stage start is not movable
    assert space.str_key("22212202") == space.str_key("22212220") != space.str_key("22210222")


def test_sample_and_mutate_are_uniform_single_layer_changes(space):
    rng = random.Random(0)
    genotypes = [space.to_str(space.sample(rng)) for _ in range(3000)]
    for layer in range(8):
        counts = collections.Counter(g[layer] for g in genotypes)
        assert set(counts) == {"0", "1", "2"} and max(counts.values()) - min(counts.values()) < 200, counts
    changed = collections.Counter()
    for parent in genotypes[:500]:
        child = space.to_str(space.mutate(space.from_str(parent), rng))
        diff = [i for i in range(8) if child[i] != parent[i]]
        assert len(diff) == 1 and space.str_key(child) != space.str_key(parent)
        changed[diff[0]] += 1
    assert set(changed) == set(range(8))


@pytest.mark.parametrize("text, fragment", [
    ("1201201", "needs 8 digits (one per layer), got 7"),
    ("120120120", "got 9"),
    ("12a12012", "layer 3 is 'a'"),
    ("12012013", "layer 8 is '3'"),
    ("", "got 0"),
    (12012012, "must be a string"),
])
def test_malformed_genotypes_are_one_line_errors(space, text, fragment):
    with pytest.raises(GenotypeError) as info:
        space.from_str(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_layers_are_the_depth_units_and_the_ops(space):
    model = space.build(space.from_str("12001020"), 10)
    units = space.depth_units(model)
    assert len(units) == 8 and space.op_modules(model) == units
    seen = []
    handles = [u.register_forward_hook(lambda m, i, o: seen.append(m)) for u in units]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    for h in handles:
        h.remove()
    assert seen == units  # forward order
    fixed = sum(_params(getattr(model, name)) for name in ("stem", "head", "classifier"))
    assert sum(_params(u) for u in units) + fixed == _params(model)
    assert list(units[2].parameters()) and not list(units[3].parameters())  # identity: 1x1 conv at a stage start only


# ---- through the CLI, found by entry point ----------------------------------------------------------
def test_spaces_lists_the_plugin(env):
    line = next(line for line in evonas(env, "spaces").splitlines() if "nbmacro" in line)
    assert "plug-in" in line and "6,561" in line


def test_search_with_two_ray_workers(env, tmp_path):
    run = tmp_path / "run"
    out = evonas(env, "search", "--space", "nbmacro", "--estimator", "params", "--budget", "12", "--population", "4",
                 "--sample", "2", "--workers", "2", "--executor", "ray", "--dataset", "synthetic",
                 "--run-dir", str(run), timeout=240)  # params: each actor must build the plug-in's networks
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert len(history) == 12 and all(r["status"] == "ok" for r in history), history
    workers = {r["worker"].partition("@")[0] for r in history}
    assert workers and workers <= {"w0", "w1"}  # Ray actors scored them (each found the plug-in itself)
    best = json.loads((run / "best.json").read_text())["best"]["genotype"]
    assert len(best) == 8 and set(best) <= set("012") and best in out


def test_correlate_gives_the_table_parameter_counts(env, table, tmp_path):
    rows = random.Random(1).sample(table, 20)
    archs = tmp_path / "archs.csv"
    with archs.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "corr"
    evonas(env, "correlate", "--space", "nbmacro", "--archs-file", str(archs), "--truth-column", ACCURACY,
           "--estimator", "params,flops", "--dataset", "synthetic", "--out", str(out))
    with (out / "scores.csv").open(newline="") as fh:
        scores = list(csv.DictReader(fh))
    assert len(scores) == 20
    by_arch = {r["arch"]: r for r in rows}
    for s in scores:
        row = by_arch[s["arch"]]
        assert float(s["params"]) == pytest.approx(int(row["params"]) / 1e6, abs=1e-6)
        # Suite-Zero FLOPs add BN/ReLU/bias operations to the table's multiply-adds
        assert float(row["flops"]) / 1e6 < float(s["flops"]) < 1.2 * float(row["flops"]) / 1e6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["space"] == "nbmacro"


def test_train_then_export(env, space, tmp_path):
    train_dir = tmp_path / "train"
    evonas(env, "train", "--space", "nbmacro", "--genotype", "12012012", "--epochs", "1", "--train-images", "64",
           "--test-images", "64", "--batch-size", "32", "--dataset", "synthetic", "--out", str(train_dir))
    result = json.loads((train_dir / "result.json").read_text())
    assert result["genotype"] == "12012012" and result["space"] == "nbmacro"
    assert result["parameters"] == _params(space.build(space.from_str("12012012"), 10))
    published = space.training_recipe()  # the space's own recipe, less what the command line changed
    assert {k: result["recipe"][k] for k in ("name", "lr", "nesterov", "weight_decay")} == \
        {k: published[k] for k in ("name", "lr", "nesterov", "weight_decay")}
    # TorchScript: the plug-in's network leaves evonas like any other (ONNX itself is tests/test_export.py's,
    # and its export of this network costs ~15 CPU-s)
    evonas(env, "export", str(train_dir), "--format", "torchscript")
    sidecar = json.loads((train_dir / "model.ts.json").read_text())
    assert (train_dir / "model.ts.pt").stat().st_size > 1_000_000 and sidecar["space"] == "nbmacro"
    assert sidecar["check"]["max_abs_diff"] <= 1e-4
