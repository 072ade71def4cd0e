"""A space written outside evonas goes everywhere a built-in goes; nothing in evonas/ branches on a space's name.

``toy_space.ToySpace`` implements only the abstract ``SearchSpace`` methods. Registered from Python it
searches in process and over Ray (its class travels to the actors), correlates, trains, exports,
draws and reports; exposed through an ``evonas.search_spaces`` entry point, a fresh ``evonas``
process finds it, and a broken plug-in is one warning line that leaves every other space usable.
"""
from __future__ import annotations

import ast
import csv
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import evonas
import search_spaces
from toy_space import ToySpace, all_cells

ROOT = Path(__file__).resolve().parents[1]
TINY_SEARCH = dict(estimator="grad_norm", budget=10, population=4, sample=2, dataset="synthetic", batch_size=8,
                   progress=False)


@pytest.fixture
def toy():
    with search_spaces.registered(ToySpace):
        yield search_spaces.get("toy")


def test_a_space_with_only_the_abstract_methods_gets_working_defaults(toy) -> None:
    g = toy.from_str("conv3-pool-skip")
    assert toy.population_sample == (25, 5) and toy.network_knobs == ()
    assert toy.training_recipe()["name"] == "generic-sgd-cosine" and toy.training_options({}) == {}
    [sketch] = toy.sketches(g)
    assert sketch.nodes == ("0", "1", "2", "3") and [e[2] for e in sketch.edges] == ["conv3", "pool", "skip"]
    model = toy.build(g, 10)
    assert toy.op_modules(model) == []  # its layers are the depth units themselves: all costs are the fixed part
    assert search_spaces.origin("toy") == "registered" and search_spaces.classes_to_ship("toy") == {"toy": ToySpace}
    assert search_spaces.classes_to_ship("nb201") == {}  # built-ins are found by name everywhere


def test_search_in_process_and_over_ray_then_train_export_draw_report(toy, tmp_path) -> None:
    local = evonas.search(space="toy", run_dir=tmp_path / "local", **TINY_SEARCH)
    over_ray = evonas.search(space="toy", run_dir=tmp_path / "ray", workers=2, **TINY_SEARCH)
    assert len(local.history) == len(over_ray.history) == 10
    assert all(line["status"] == "ok" for line in over_ray.history)
    assert any(line["worker"].startswith("w") for line in over_ray.history)  # scored by Ray actors
    scores = lambda run: {line["key"]: line["score"] for line in run.history}  # noqa: E731
    shared = scores(local).keys() & scores(over_ray).keys()
    assert shared and all(scores(local)[k] == pytest.approx(scores(over_ray)[k], rel=1e-6) for k in shared)

    [result] = evonas.train(space="toy", genotype=local.best.genotype, epochs=1, train_images=64, test_images=32,
                            batch_size=32, dataset="synthetic", out=tmp_path / "train", progress=False)
    assert result["recipe"]["name"] == "generic-sgd-cosine" and 0 <= result["test_accuracy"] <= 100
    sidecar = evonas.export(tmp_path / "train", "torchscript")
    assert sidecar["check"]["max_abs_diff"] <= 1e-4
    svg = evonas.draw("toy", local.best.genotype, tmp_path / "cell.svg").read_text()
    assert all(op in svg for op in local.best.genotype.split("-"))
    page = evonas.report(local).read_text()
    assert local.best.genotype in page


def test_correlate_a_registered_space_against_a_table(toy, tmp_path) -> None:
    rng = random.Random(0)
    cells = rng.sample(all_cells(), 12)
    table = tmp_path / "toy_truth.csv"
    with table.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch", "acc"])
        writer.writerows([cell, rng.uniform(50, 90)] for cell in cells)
    stats = evonas.correlate("toy", ["params", "grad_norm"], archs_file=table, truth_column="acc",
                             dataset="synthetic", batch_size=8, out=tmp_path / "corr")
    assert set(stats) == {"params", "grad_norm"}
    assert all(-1 <= s["spearman"] <= 1 and s["n"] == 12 for s in stats.values())


def _write_plugin(site: Path, module: str, body: str, entry_name: str) -> None:
    """A minimal installed distribution: the module and a dist-info naming its entry point."""
    (site / f"{module}.py").write_text(body)
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[evonas.search_spaces]\n{entry_name} = {module}:PluginSpace\n")


def test_an_entry_point_space_is_found_and_a_broken_one_only_warns(tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    toy_source = (Path(__file__).with_name("toy_space.py")).read_text()
    _write_plugin(site, "good_plugin", toy_source + "\n\nclass PluginSpace(ToySpace):\n    name = 'plugtoy'\n",
                  "plugtoy")
    _write_plugin(site, "bad_plugin", "raise ImportError('this plug-in is broken')\n", "broken")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    listing = subprocess.run([sys.executable, "-m", "evonas.cli", "spaces"], capture_output=True, text=True,
                             env=env, cwd=tmp_path, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "plugtoy" in listing.stdout and "plug-in" in listing.stdout and "nb201" in listing.stdout
    warnings = [line for line in listing.stderr.splitlines() if "broken" in line]
    assert len(warnings) == 1 and "failed to load" in warnings[0] and "Traceback" not in listing.stderr
    arch = subprocess.run([sys.executable, "-m", "evonas.cli", "arch", "conv3-conv1-pool", "--space", "plugtoy"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert arch.returncode == 0 and "canonical key: conv3-conv1-pool" in arch.stdout, arch.stderr


# ---- no branch on a space's name in evonas/ -------------------------------------------------------------
#: Where a space's name may appear as a literal: the defaults a user gets without naming a space.
ALLOWED_DEFAULTS = {("evonas/settings.py", "DEFAULT_SPACE")}


def space_name_uses(root: Path, names: set[str]) -> list[str]:
    """Places in ``root``'s Python files that compare with, index by or switch on a space name literal.

    A name may stand as a default (a module constant listed in ``ALLOWED_DEFAULTS``, or a function
    parameter's default value); anywhere else it is a branch or a table keyed by space.
    """
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        tree = ast.parse(path.read_text())
        allowed: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                allowed.update(id(d) for d in [*node.args.defaults, *node.args.kw_defaults] if d is not None)
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and (rel, t.id) in ALLOWED_DEFAULTS
                                                    for t in node.targets):
                allowed.add(id(node.value))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
                    and id(node) not in allowed):
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    return found


def test_no_branch_on_a_space_name_remains_in_evonas() -> None:
    names = set(search_spaces.available())
    assert {"nb201", "darts"} <= names
    assert space_name_uses(ROOT / "evonas", names) == []


def test_the_scan_finds_a_branch_when_there_is_one(tmp_path) -> None:
    pkg = tmp_path / "evonas"
    pkg.mkdir()
    (pkg / "x.py").write_text(textwrap.dedent("""
        def f(space="nb201"):
            if space == "darts":
                return {"nb201": 1}
    """))
    assert [hit.split(": ")[1] for hit in space_name_uses(pkg, {"nb201", "darts"})] == ["'darts'", "'nb201'"]
