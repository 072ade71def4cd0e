"""`evonas correlate`'s score store: kill -9 and resume, shards and merge, keys, multi-seed, bad input."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import estimators
from cli_helpers import assert_one_line_error, run_cli
from correlate_fakes import SlowGradNorm
from evonas import correlating as corr
from evonas.scoring import score_key as score_key_mod
from evonas.scoring import scorer as scorer_mod
from test_correlate import SYNTH, nb201_table, read_scores

TESTS = Path(__file__).resolve().parent
SLOW = SlowGradNorm.name


@pytest.fixture
def slow_estimator(monkeypatch):
    monkeypatch.setattr(SlowGradNorm, "calls", 0)
    with estimators.registered(SlowGradNorm):
        yield SLOW


@pytest.fixture
def archs(tmp_path) -> Path:
    return nb201_table(tmp_path / "archs.csv", 6)


def correlate(monkeypatch, capsys, archs: Path, out: Path, *extra: str, estimator: str = "params,grad_norm"):
    code, stdout, err = run_cli(monkeypatch, capsys, "correlate", "--estimator", estimator, "--archs-file",
                                str(archs), "--out", str(out), *SYNTH, *extra)
    assert code == 0, err
    return stdout


def store_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / corr.STORE).read_text().splitlines()]


def results(folder: Path) -> dict:
    """summary.json's statistics without the timings (which differ between runs)."""
    res = json.loads((folder / "summary.json").read_text())["results"]
    return {name: {k: v for k, v in stats.items() if k != "seconds_per_cell"} for name, stats in res.items()}


@pytest.fixture
def count_scores(monkeypatch) -> dict[str, int]:
    """Scorer calls per estimator name (every real scoring goes through ``Scorer.score``)."""
    calls: dict[str, int] = {}
    original = scorer_mod.Scorer.score

    def counted(self, genotype, eval_id=0):
        calls[self.config.estimator] = calls.get(self.config.estimator, 0) + 1
        return original(self, genotype, eval_id)

    monkeypatch.setattr(scorer_mod.Scorer, "score", counted)
    return calls


# ---- kill -9 and resume --------------------------------------------------------------
def test_kill_minus_9_then_resume_gives_the_uninterrupted_scores(tmp_path, monkeypatch, capsys, slow_estimator):
    archs = nb201_table(tmp_path / "archs.csv", 8)
    killed = tmp_path / "killed"
    argv = ["correlate", "--estimator", f"{SLOW},grad_norm", "--archs-file", str(archs), "--out", str(killed), *SYNTH]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", "import correlate_fakes; correlate_fakes.main()", "0.4", *argv],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            path = killed / corr.STORE
            if path.exists() and path.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    before = store_lines(killed)
    assert 2 <= len(before) < 8 and {line["estimator"] for line in before} == {SLOW}
    with (killed / corr.STORE).open("ab") as fh:  # a line torn by the kill
        fh.write(b'{"cell": 7, "arch": "|nor_co')

    correlate(monkeypatch, capsys, archs, killed, "--resume", estimator=f"{SLOW},grad_norm")
    assert SlowGradNorm.calls == 8 - len(before)  # only the missing cells
    whole = tmp_path / "whole"
    correlate(monkeypatch, capsys, archs, whole, estimator=f"{SLOW},grad_norm")
    assert read_scores(killed / "scores.csv") == read_scores(whole / "scores.csv")
    assert results(killed) == results(whole)
    lines = store_lines(killed)  # the torn line is gone, nothing was scored twice
    assert len(lines) == 16 and len({(ln["key"], ln["cell"]) for ln in lines}) == 16


def test_resume_of_a_finished_folder_scores_nothing(tmp_path, monkeypatch, capsys, archs, count_scores):
    out = tmp_path / "out"
    correlate(monkeypatch, capsys, archs, out)
    assert count_scores == {"params": 6, "grad_norm": 6}
    first = results(out)
    count_scores.clear()
    correlate(monkeypatch, capsys, archs, out, "--resume")
    assert count_scores == {}
    assert results(out) == first


# ---- keys: what changed is re-scored, nothing else -------------------------------------
def test_changed_interval_rescores_only_that_estimator(tmp_path, monkeypatch, capsys, count_scores):
    archs = nb201_table(tmp_path / "archs.csv", 3)
    out = tmp_path / "out"
    correlate(monkeypatch, capsys, archs, out, "--interval", "1e-4", "5e-4", estimator="params,sweet")
    assert count_scores == {"params": 3, "sweet": 3}
    count_scores.clear()
    correlate(monkeypatch, capsys, archs, out, "--resume", "--interval", "1e-3", "5e-3", estimator="params,sweet")
    assert count_scores == {"sweet": 3}
    assert json.loads((out / "summary.json").read_text())["results"]["sweet"]["settings"]["interval"] == [1e-3, 5e-3]
    assert len(store_lines(out)) == 9  # the old sweet scores stay in the store under their own key
    count_scores.clear()
    correlate(monkeypatch, capsys, archs, out, "--resume", "--interval", "1e-4", "5e-4", estimator="params,sweet")
    assert count_scores == {}  # the first interval's scores are still there


def test_changed_code_fingerprint_rescores_only_that_estimator(tmp_path, monkeypatch, capsys, archs, count_scores):
    out = tmp_path / "out"
    correlate(monkeypatch, capsys, archs, out)
    count_scores.clear()
    real = score_key_mod.code_key
    monkeypatch.setattr(score_key_mod, "code_key", lambda config: real(config) + ("x" if config.estimator == "grad_norm"
                                                                               else ""))
    correlate(monkeypatch, capsys, archs, out, "--resume")
    assert count_scores == {"grad_norm": 6}


def test_score_key_follows_every_score_setting():
    from evonas.settings import ScoringSettings

    base = ScoringSettings("nb201", "grad_norm", {}, "synthetic", None, 8)
    same = ScoringSettings("nb201", "grad_norm", {}, "synthetic", "/elsewhere", 8)  # the data folder is no setting
    assert corr.score_key(base) == corr.score_key(same)
    for changed in (ScoringSettings("nb201", "grad_norm", {}, "synthetic", None, 16),
                    ScoringSettings("nb201", "grad_norm", {}, "cifar10", None, 8),
                    ScoringSettings("nb201", "grad_norm", {}, "synthetic", None, 8, "random"),
                    ScoringSettings("nb201", "grad_norm", {}, "synthetic", None, 8, seed=1),
                    ScoringSettings("nb201", "grad_norm", {}, "synthetic", None, 8, build_options={"C": 8}),
                    ScoringSettings("nb201", "sweet", {"interval": [1, 2]}, "synthetic", None, 8)):
        assert corr.score_key(changed) != corr.score_key(base), changed


# ---- shards and merge ----------------------------------------------------------------
def test_two_shards_merged_equal_one_unsharded_run(tmp_path, monkeypatch, capsys, archs):
    whole, merged = tmp_path / "whole", tmp_path / "merged"
    correlate(monkeypatch, capsys, archs, whole)
    shards = [tmp_path / f"s{i}" for i in range(2)]
    for i, folder in enumerate(shards):
        stdout = correlate(monkeypatch, capsys, archs, folder, "--shard", f"{i}/2")
        assert "done" in stdout and not (folder / "summary.json").exists()
        assert sorted(line["cell"] for line in store_lines(folder)) == sorted([*range(i, 6, 2)] * 2)
    code, stdout, err = run_cli(monkeypatch, capsys, "correlate", "--out", str(merged),
                                "--merge", str(shards[1]), "--merge", str(shards[0]))
    assert code == 0, err
    assert read_scores(merged / "scores.csv") == read_scores(whole / "scores.csv")
    assert results(merged) == results(whole)
    # the merged folder is an ordinary one: resuming it scores nothing
    correlate(monkeypatch, capsys, archs, merged, "--resume")
    assert results(merged) == results(whole)


def test_merge_refuses_other_settings_and_missing_shards(tmp_path, monkeypatch, capsys, archs):
    a, b = tmp_path / "a", tmp_path / "b"
    correlate(monkeypatch, capsys, archs, a, "--shard", "0/2")
    code, _, err = run_cli(monkeypatch, capsys, "correlate", "--estimator", "params,grad_norm", "--archs-file",
                           str(archs), "--out", str(b), "--shard", "1/2", "--dataset", "synthetic",
                           "--batch-size", "4")
    assert code == 0, err
    for folders, fragment in [((a, b), "scored grad_norm@0 with other settings or code"),
                              ((a,), "have no params@0 score in these folders")]:
        argv = [arg for f in folders for arg in ("--merge", str(f))]
        assert_one_line_error(*run_cli(monkeypatch, capsys, "correlate", "--out", str(tmp_path / "m"), *argv),
                              fragment)


# ---- several seeds -------------------------------------------------------------------
def test_seeds_report_mean_and_spread_and_each_seed_equals_its_own_run(tmp_path, monkeypatch, capsys, archs):
    multi = tmp_path / "multi"
    stdout = correlate(monkeypatch, capsys, archs, multi, "--seeds", "0,1,2")
    rows = read_scores(multi / "scores.csv")
    assert list(rows[0]) == ["arch", "truth", "params@0", "params@1", "params@2",
                             "grad_norm@0", "grad_norm@1", "grad_norm@2"]
    res = json.loads((multi / "summary.json").read_text())["results"]
    for name in ("params", "grad_norm"):
        per_seed = [res[name]["seeds"][str(s)]["spearman"] for s in range(3)]
        assert res[name]["spearman"] == pytest.approx(np.mean(per_seed))
        assert res[name]["std"]["spearman"] == pytest.approx(np.std(per_seed, ddof=1))
    assert res["params"]["std"]["spearman"] == 0.0  # params does not depend on the seed
    assert len({r["grad_norm@0"] for r in rows} ^ {r["grad_norm@1"] for r in rows}) > 0  # grad_norm does
    assert f"{res['grad_norm']['spearman']:.3f}±{res['grad_norm']['std']['spearman']:.3f}" in stdout
    single = tmp_path / "single1"
    correlate(monkeypatch, capsys, archs, single, "--seed", "1", estimator="grad_norm")
    assert [r["grad_norm"] for r in read_scores(single / "scores.csv")] == [r["grad_norm@1"] for r in rows]


def test_over_seeds_hand_computed():
    mean, spread = corr.over_seeds([{"a": 1.0, "b": None, "c": [1]}, {"a": 3.0, "b": 2.0, "c": [2]}])
    assert mean["a"] == 2.0 and spread["a"] == pytest.approx(math.sqrt(2))
    assert math.isnan(mean["b"]) and "c" not in mean  # a seed without the statistic makes it undefined
    assert math.isnan(corr.over_seeds([{"a": 1.0}])[1]["a"])


# ---- bad input: one line, exit 2 -----------------------------------------------------
@pytest.mark.parametrize("argv, fragment", [
    (["--shard", "3/2"], "--shard 3/2: I must be in 0..N-1"),
    (["--shard", "1"], "is not I/N"),
    (["--seeds", "0,a"], "--seeds '0,a' is not a comma-separated list"),
    (["--seeds", "1,1"], "repeats a seed"),
])
def test_bad_flags_are_one_error_line(tmp_path, monkeypatch, capsys, archs, argv, fragment):
    out = tmp_path / "out"
    assert_one_line_error(*run_cli(monkeypatch, capsys, "correlate", "--estimator", "params", "--archs-file",
                                   str(archs), "--out", str(out), *SYNTH, *argv), fragment)
    assert not out.exists()


def test_folder_misuse_is_one_error_line(tmp_path, monkeypatch, capsys, archs):
    out = tmp_path / "out"
    correlate(monkeypatch, capsys, archs, out, "--shard", "0/2")
    base = ["correlate", "--archs-file", str(archs), "--out", str(out), *SYNTH]
    for argv, fragment in [
        (["--estimator", "params,grad_norm", "--shard", "0/2"], "already holds a correlate run; continue it with --resume"),
        (["--estimator", "params", "--shard", "0/2", "--resume"], "was made with estimators params,grad_norm, not params"),
        (["--estimator", "params,grad_norm", "--seeds", "0,1", "--shard", "0/2", "--resume"], "seeds 0, not 0,1"),
        (["--estimator", "params,grad_norm", "--resume"], "is shard 0/2, not 0/1"),
        (["--estimator", "params,grad_norm", "--shard", "0/2", "--resume", "--out", str(tmp_path / "new")],
         "nothing to resume"),
    ]:
        assert_one_line_error(*run_cli(monkeypatch, capsys, *base, *argv), fragment)
    other = nb201_table(tmp_path / "other.csv", 5)
    assert_one_line_error(*run_cli(monkeypatch, capsys, "correlate", "--estimator", "params,grad_norm",
                                   "--archs-file", str(other), "--out", str(out), "--shard", "0/2", "--resume",
                                   *SYNTH), "holds other cells")
    assert_one_line_error(*run_cli(monkeypatch, capsys, "correlate", "--merge", str(out)), "--merge needs --out")
    assert_one_line_error(*run_cli(monkeypatch, capsys, "correlate", "--out", str(tmp_path / "m"),
                                   "--merge", str(tmp_path / "absent")), "has no correlate.json")


# ---- one Ray for every estimator -------------------------------------------------------
@pytest.mark.slow
def test_ray_serves_every_estimator_from_one_session(tmp_path, monkeypatch, capsys, archs):
    from evonas.execution import ray_session

    started = []
    original = ray_session.RaySession.__init__

    def counted(self, *args, **kwargs):
        original(self, *args, **kwargs)
        started.append(self.owned)

    monkeypatch.setattr(ray_session.RaySession, "__init__", counted)
    local, ray = tmp_path / "local", tmp_path / "ray"
    correlate(monkeypatch, capsys, archs, local)
    correlate(monkeypatch, capsys, archs, ray, "--executor", "ray", "--workers", "2")
    assert started[0] is True and not any(started[1:]) and len(started) == 3  # ours, then each pool joins it
    assert read_scores(ray / "scores.csv") == read_scores(local / "scores.csv")
    assert json.loads((ray / "summary.json").read_text())["settings"]["executor"] == "ray"
