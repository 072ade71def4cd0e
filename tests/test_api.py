"""The Python API (`import evonas`), the example script, and `evonas report`."""
from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pytest

import evonas
from cli_helpers import assert_one_line_error, run_cli

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_import_is_cheap_and_the_api_loads_on_first_use() -> None:
    code = "import sys, evonas; before = 'torch' in sys.modules; evonas.Run; print(before, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


def test_the_example_script_runs_end_to_end(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--dataset", "synthetic", "--budget", "5",
         "--epochs", "1", "--train-images", "64", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Run(" in out.stdout and "trained" in out.stdout and "parameters in the evaluation network" in out.stdout
    trained = next((tmp_path / "run" / "train").iterdir())
    for produced in (tmp_path / "best.png", tmp_path / "run" / "report.html", trained / "model.ts.pt"):
        assert produced.stat().st_size > 0, produced


def test_search_returns_a_run_and_reports_progress(tmp_path: Path) -> None:
    seen = []
    run = evonas.search(space="nb201", estimator="params", budget=10, population=4, dataset="synthetic",
                        run_dir=tmp_path / "r", progress=seen.append)
    assert [p.evaluations for p in seen] == list(range(1, 11))
    assert isinstance(run, evonas.Run) and run.complete and len(run.history) == 10
    best = max((r for r in run.history if r["status"] == "ok"), key=lambda r: r["score"])
    assert (run.best.genotype, run.best.score) == (best["genotype"], best["score"])
    top = run.top(3)
    assert [c.score for c in top] == sorted((c.score for c in top), reverse=True)
    assert len({c.key for c in top}) == len(top)
    first_ids = [r["id"] for r in run.history]
    more = evonas.resume(run, budget=14, progress=False)
    assert len(more.history) == 14 and [r["id"] for r in more.history[:10]] == first_ids


def test_a_killed_run_loads(tmp_path: Path) -> None:
    shutil.copytree(DATA / "run_v0_1_0_killed", tmp_path / "run")
    run = evonas.Run.load(tmp_path / "run")
    assert not run.complete and len(run.history) == 10
    assert run.best.score == max(r["score"] for r in run.history if r["status"] == "ok")
    assert run.settings.space == "nb201" and run.scoring.estimator == "sweet"


def test_build_gives_the_evaluation_network() -> None:
    model = evonas.build("nb201", ALL_CONV3, num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == 1_531_546  # DESIGN.md's reference count
    proxy = evonas.build("nb201", ALL_CONV3, proxy=True, channels=4)
    assert sum(p.numel() for p in proxy.parameters()) < 100_000
    darts = "normal=sep3~0,sep3~1|sep3~0,sep3~1|sep3~1,skip~0|skip~0,dil3~2;reduce=max3~0,max3~1|skip~2,max3~1|max3~0,skip~2|skip~2,max3~1"
    names = [name for name, _ in evonas.build("darts", darts, layers=8, channels=8).named_parameters()]
    assert names and not any("auxiliary" in name for name in names)  # the head only trains


@pytest.mark.parametrize("call, fragment", [
    (lambda: evonas.search(space="nb999", budget=5, population=2), "unknown search space 'nb999'"),
    (lambda: evonas.search(estimator="magic", budget=5, population=2), "unknown estimator 'magic'"),
    (lambda: evonas.search(budget=5), "--population (25) is larger than --budget (5)"),
    (lambda: evonas.build("nb201", "not a cell"), "NB-201"),
    (lambda: evonas.Run.load("/no/such/run"), "does not exist"),
    (lambda: evonas.correlate("nb201", ["params"], truth="/no/such.csv", sample=3), "not found"),
])
def test_user_errors_are_evonas_errors_with_the_cli_message(call, fragment: str) -> None:
    with pytest.raises(evonas.EvonasError, match=re.escape(fragment)):
        call()


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.title, self.images, self.headings, self._in = "", [], [], None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._in = tag
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "h2":
            self.headings.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


def test_report_is_one_self_contained_page(tmp_path: Path, monkeypatch, capsys) -> None:
    run = evonas.search(space="nb201", estimator="params", budget=8, population=4, dataset="synthetic",
                        run_dir=tmp_path / "r", progress=False, top_k=3)
    evonas.train(run, top=1, epochs=1, channels=4, layers=1, train_images=32, test_images=16, progress=False)
    code, out, err = run_cli(monkeypatch, capsys, "report", str(run.path), "--out", str(tmp_path / "page.html"))
    assert code == 0, err
    page = _parse(tmp_path / "page.html")
    assert page.title == f"evonas run report: {run.path.name}"
    assert {"Progress", "Trainings", "Settings"} <= set(page.headings)
    assert len(page.images) == 1 + 3  # the curves, then one diagram per top cell
    for src in page.images:
        assert src.startswith("data:image/png;base64,")  # embedded: the page needs no other file
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(io.BytesIO(png)).ndim == 3
    text = (tmp_path / "page.html").read_text()
    assert run.top(1)[0].genotype in text and "synthetic" in text  # the training's row


def test_report_errors_are_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    assert_one_line_error(*run_cli(monkeypatch, capsys, "report", str(tmp_path)), "has no config.json")
    shutil.copytree(DATA / "run_v0_1_0_killed", tmp_path / "run")
    os.chmod(tmp_path, 0o555)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores permissions: aim at an impossible path instead
            target = "/proc/evonas/report.html"
        else:
            target = str(tmp_path / "report.html")
        assert_one_line_error(*run_cli(monkeypatch, capsys, "report", str(tmp_path / "run"), "--out", target),
                              "cannot write")
    finally:
        os.chmod(tmp_path, 0o755)
