"""`evonas search` / `evonas show` end to end: bad inputs, kill -9 + resume, every estimator and space."""
from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import estimators
from cli_helpers import assert_one_line_error, run_cli
from evonas.settings import SearchSettings
from evonas.searching import start_search

ROOT = Path(__file__).resolve().parents[1]
EVONAS = [sys.executable, "-m", "evonas.cli"]
TINY = ["--dataset", "synthetic", "--estimator", "params", "--space", "nb201"]


@pytest.mark.parametrize("args, needle", [
    (["--space", "nb999", "--estimator", "params"], "unknown search space 'nb999'"),
    (["--space", "nb201", "--estimator", "magic"], "unknown estimator 'magic'"),
    ([*TINY, "--budget", "0"], "--budget must be at least 1"),
    ([*TINY, "--budget", "10", "--population", "20"], "--population (20) is larger than --budget (10)"),
    ([*TINY, "--budget", "10", "--sample", "30"], "--sample must be between 1 and the population"),
    ([*TINY, "--batch-policy", "random"], "--batch-policy must be one of fixed, fresh"),
    ([*TINY, "--interval", "1e-4", "5e-4"], "--interval only applies to the Sweetimator family"),
    ([*TINY, "--budget", "5", "--population", "2", "--address", "127.0.0.1:9"], "127.0.0.1:9"),
    ([*TINY, "--jobs-per-call", "4"], "--jobs-per-call needs the Ray executor"),
    ([*TINY, "--checkpoint-seconds", "-1"], "--checkpoint-seconds must be 0 or more"),
])
def test_bad_inputs_are_one_line_errors(monkeypatch, capsys, tmp_path, args, needle):
    code, _, err = run_cli(monkeypatch, capsys, "search", *args, "--run-dir", str(tmp_path / "r"))
    assert_one_line_error(code, "", err, needle)
    assert not (tmp_path / "r").exists()  # nothing half-made is left behind


def test_bad_resume_targets_are_one_line_errors(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "search", "--resume", str(tmp_path / "missing"))
    assert_one_line_error(code, "", err, "does not exist")
    run = tmp_path / "r"
    code, _, err = run_cli(monkeypatch, capsys, "search", *TINY, "--budget", "4", "--population", "2",
                        "--run-dir", str(run))
    assert code == 0, err
    (run / "checkpoint.json").write_bytes(b"\x00\xffgarbage")
    code, _, err = run_cli(monkeypatch, capsys, "search", "--resume", str(run))
    assert_one_line_error(code, "", err, "unreadable")
    code, _, err = run_cli(monkeypatch, capsys, "search", "--resume", str(run), "--seed", "3")
    assert_one_line_error(code, "", err, "not seed")
    code, _, err = run_cli(monkeypatch, capsys, "show", str(tmp_path))
    assert_one_line_error(code, "", err, "has no config.json")


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def test_kill_9_then_resume_finishes_with_exactly_the_budget(monkeypatch, capsys, tmp_path):
    """The search is killed in a process of its own; show and resume then run in this one (they only read the folder)."""
    run = tmp_path / "run"
    args = ["search", *TINY, "--budget", "60", "--population", "5", "--sample", "2",
            "--checkpoint-every", "7", "--seed", "3", "--run-dir", str(run)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*EVONAS, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    history = run / "history.jsonl"
    deadline = time.monotonic() + 300
    while _lines(history) < 16 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"search ended before it could be killed: {proc.stderr.read().decode()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = [json.loads(line) for line in history.read_text().splitlines() if line.endswith("}")]
    assert 16 <= len(before) < 60

    code, shown, err = run_cli(monkeypatch, capsys, "show", str(run))
    assert code == 0 and "stopped" in shown and f"--resume {run}" in shown, err

    code, done, err = run_cli(monkeypatch, capsys, "search", "--resume", str(run))
    assert code == 0, err
    after = [json.loads(line) for line in history.read_text().splitlines()]
    ids = [r["id"] for r in after]
    assert len(after) == 60 and len(set(ids)) == 60
    assert after[: len(before)] == before
    assert "finished: 60/60 evaluations" in done and "top 5 cells" in done


def test_truth_table_gives_true_accuracies(monkeypatch, capsys, tmp_path, nb201_truth, cifar_dir):
    code, _, err = run_cli(monkeypatch, capsys, "search", *TINY, "--truth", str(nb201_truth), "--run-dir", str(tmp_path))
    assert_one_line_error(code, "", err, "not 'synthetic'")  # refused before searching
    code, out, err = run_cli(monkeypatch, capsys, "search", "--estimator", "params", "--data-dir", str(cifar_dir),
                          "--budget", "6", "--population", "3", "--top-k", "2", "--truth", str(nb201_truth),
                          "--run-dir", str(tmp_path / "r"))
    assert code == 0, err
    assert "true acc" in out and "top 2 cells" in out
    best = json.loads((tmp_path / "r" / "best.json").read_text())["best"]["genotype"]
    with open(nb201_truth, newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["arch"] == best)
    assert f"{float(row['cifar10_test']):.2f}" in out


SMALL_BUILD = {"nb201": {"channels": 4, "cells_per_stage": 1}, "darts": {"channels": 4, "layers": 3}}


@pytest.mark.parametrize("space", ["nb201", "darts"])
@pytest.mark.parametrize("name", sorted(estimators.available()))
def test_every_estimator_and_space_through_a_tiny_search(tmp_path, space, name):
    sweet = estimators.available()[name].needs_calibration
    cfg = SearchSettings(
        space=space, estimator=name, budget=3, population=2, sample=1, dataset="synthetic",
        batch_size=8, build_options=SMALL_BUILD[space], interval=(1e-4, 5e-4) if sweet else None,
    )
    run = start_search(cfg, run_dir=tmp_path / "r")
    hist = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert len(hist) == 3
    assert any(r["status"] == "ok" for r in hist), hist  # every estimator scores real cells
    for r in hist:
        if r["status"] == "ok":
            assert isinstance(r["score"], float) and math.isfinite(r["score"])
        else:  # a reasoned failure (e.g. a cell whose output ignores its input), never a crash
            assert r["error"] and not re.match(r"^\w+(Error|Exception):", r["error"]), r["error"]
    config = json.loads((run / "config.json").read_text())
    assert config["scoring"]["build_options"] == SMALL_BUILD[space]
    if sweet:
        assert config["estimator"]["settings"]["interval"] == [1e-4, 5e-4]


def test_ray_pool_flags_reach_the_executor(monkeypatch):
    from evonas.searching import driver

    seen = {}
    monkeypatch.setattr(driver, "make_executor", lambda scoring, **kwargs: seen.update(kwargs))
    settings = SearchSettings(space="nb201", estimator="params", executor="ray", workers=3, jobs_per_call=4,
                              ship_data=True).resolved()
    driver.default_executor(driver.scoring_settings(settings), settings)
    assert seen["jobs_per_call"] == 4 and seen["workers"] == 3 and seen["ship_data"] and seen["kind"] == "ray"
