"""Estimator registry: decorator registration, lookup errors, and third-party plugins via entry points."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from torch import nn

import estimators
from estimators.base import Estimator

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "plugin_layers"

PLUGIN_CODE = '''
"""A third-party estimator shipped in its own package."""
from torch import nn

from estimators.base import Estimator


class LayerCount(Estimator):
    """Counts Conv2d layers (a stand-in for any third-party proxy)."""

    name = "plugin_layers"
    description = "number of Conv2d layers (demo plugin)"
    needs_data = False
    needs_labels = False

    def score(self, model, batches, depth_units=None):
        return float(sum(isinstance(m, nn.Conv2d) for m in model.modules()))
'''

PLUGIN_PYPROJECT = f'''
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "evonas-plugin-demo"
version = "0.1"

[project.entry-points."{estimators.ENTRY_POINT_GROUP}"]
{PLUGIN} = "evonas_plugin_demo:LayerCount"

[tool.setuptools]
packages = ["evonas_plugin_demo"]
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real pip install of a tiny plugin package into a folder of its own (the venv stays clean)."""
    src = tmp_path_factory.mktemp("plugin_src")
    (src / "evonas_plugin_demo").mkdir()
    (src / "evonas_plugin_demo" / "__init__.py").write_text(PLUGIN_CODE)
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    site = tmp_path_factory.mktemp("plugin_site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(site), str(src)],
        check=True, capture_output=True, timeout=240,
    )
    return site


@pytest.fixture
def installed_plugin(plugin_site: Path, monkeypatch: pytest.MonkeyPatch):
    """The plugin on sys.path for one test; afterwards it is gone from the path and the registry."""
    monkeypatch.syspath_prepend(str(plugin_site))
    importlib.invalidate_caches()
    estimators.reload_entry_points()
    yield plugin_site
    monkeypatch.undo()
    sys.modules.pop("evonas_plugin_demo", None)
    importlib.invalidate_caches()
    estimators.reload_entry_points()
    assert PLUGIN not in estimators.available()


def test_builtin_sweet_family_is_registered() -> None:
    found = estimators.available()
    for name in ("sweet", "sweet_snip", "sweet_ntk"):
        assert found[name].needs_calibration and found[name].description
    assert list(found) == sorted(found)


def test_unknown_estimator_names_the_choices() -> None:
    with pytest.raises(estimators.UnknownEstimatorError, match="unknown estimator 'nope'.*sweet"):
        estimators.get("nope")


def test_register_needs_a_name() -> None:
    class Nameless(Estimator):
        def score(self, model, batches, depth_units=None):
            return 0.0

    with pytest.raises(ValueError, match="no name"):
        estimators.register(Nameless)


def test_plugin_package_adds_an_estimator(installed_plugin: Path) -> None:
    assert PLUGIN not in os.listdir(ROOT / "estimators")
    est = estimators.get(PLUGIN)
    assert type(est).__module__ == "evonas_plugin_demo"
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1))
    result = est.evaluate(model, [])
    assert result.ok and result.score == 2.0


def test_cli_lists_the_plugin(installed_plugin: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(installed_plugin), COLUMNS="200")
    out = subprocess.run([sys.executable, "-m", "evonas.cli", "estimators"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    line = next(l for l in out.stdout.splitlines() if PLUGIN in l)
    assert "plugin evonas_plugin_demo" in line and "number of Conv2d layers" in line
    sweet = next(l for l in out.stdout.splitlines() if " sweet " in l)
    assert "data, labels, interval" in sweet and "built-in" in sweet


def test_a_broken_plugin_warns_instead_of_breaking_the_registry(tmp_path: Path, monkeypatch) -> None:
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(f"""
        [{estimators.ENTRY_POINT_GROUP}]
        broken = no_such_module_here:Thing
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        with pytest.warns(UserWarning, match="plugin 'broken'.*failed to load"):
            estimators.reload_entry_points()
        assert "sweet" in estimators.available() and "broken" not in estimators.available()
    finally:
        monkeypatch.undo()
        importlib.invalidate_caches()
        estimators.reload_entry_points()
