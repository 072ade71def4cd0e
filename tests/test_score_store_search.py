"""``evonas search --score-store``: searches share one JSON-lines file of scores, each cell scored once."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from cli_helpers import run_cli
from evonas.scoring import resolve_scoring
from evonas.scoring.composite import Normalisation
from evonas.searching import start_search
from evonas.searching.cache import ScoreCache, ScoreStore, folder_scores, score_key
from evonas.searching.driver import scoring_settings
from evonas.settings import SearchSettings
from search_fakes import history_lines, local_fake


def settings(seed: int, store: Path, **kw) -> SearchSettings:
    return SearchSettings(space="nb201", estimator="synflow", budget=30, population=6, sample=2, seed=seed,
                          scoring_seed=0, score_store=str(store), checkpoint_every=5, checkpoint_seconds=0, **kw)


def scored(run: Path) -> dict[str, float]:
    return {r["key"]: r["score"] for r in history_lines(run) if r["status"] == "ok"}


def test_a_second_search_scores_only_what_the_store_lacks(tmp_path):
    store = tmp_path / "scores.jsonl"
    first = start_search(settings(0, store), run_dir=tmp_path / "a", executor_factory=local_fake)
    lines = [json.loads(line) for line in store.read_text().splitlines()]
    assert {line["key"] for line in lines} == set(scored(first)) and len(lines) == len(scored(first))
    second = start_search(replace(settings(0, store), budget=45), run_dir=tmp_path / "b", executor_factory=local_fake)
    records = [r for r in history_lines(second) if r["status"] == "ok"]
    from_store = [r for r in records if r.get("worker") == "store"]
    shared = set(scored(first)) & {r["key"] for r in records}
    assert shared and {r["key"] for r in from_store} == shared  # every cell of the first run came from the store
    assert all(r["score"] == scored(first)[r["key"]] for r in from_store)
    appended = [json.loads(line) for line in store.read_text().splitlines()][len(lines):]
    assert {line["key"] for line in appended} == set(scored(second)) - shared  # only new cells were added
    assert len(shared) == len(scored(first)) and len(scored(second)) > len(shared)
    alone = start_search(replace(settings(0, store), budget=45, score_store=None), run_dir=tmp_path / "c",
                         executor_factory=local_fake)
    assert [r["genotype"] for r in history_lines(alone)] == [r["genotype"] for r in history_lines(second)]


def test_other_scoring_settings_never_reuse_a_stored_score(tmp_path):
    store = tmp_path / "scores.jsonl"
    start_search(settings(0, store), run_dir=tmp_path / "a", executor_factory=local_fake)
    other = start_search(replace(settings(0, store), scoring_seed=5), run_dir=tmp_path / "b",
                         executor_factory=local_fake)
    assert not [r for r in history_lines(other) if r.get("worker") == "store"]


def test_a_torn_line_is_skipped_and_the_next_append_starts_a_fresh_line(tmp_path):
    store = tmp_path / "scores.jsonl"
    config = scoring_settings(settings(0, store))
    cache = ScoreCache(config, store)
    cache.put("k1", 1.0)
    cache.close()
    with store.open("a") as fh:
        fh.write('{"key": "k2", "fingerp')  # a writer killed mid-line
    cache = ScoreCache(config, store)
    assert cache.get("k1") == 1.0 and cache.get("k2") is None and cache.source("k1") == "store"
    cache.put("k3", 3.0)
    cache.close()
    assert ScoreStore(store, cache.store.fingerprint).read_new() == {"k1": 1.0, "k3": 3.0}
    assert store.read_text().endswith("\n") and len(store.read_text().splitlines()) == 3


def test_cli_score_store_and_scoring_seed(tmp_path, monkeypatch, capsys):
    from evonas.searching import driver
    monkeypatch.setattr(driver, "make_executor", lambda scoring, **kwargs: local_fake(scoring))
    store = tmp_path / "s.jsonl"
    for seed in ("0", "1"):
        code, out, err = run_cli(monkeypatch, capsys, "search", "--estimator", "synflow", "--budget", "8",
                                 "--population", "4", "--sample", "2", "--seed", seed, "--scoring-seed", "0",
                                 "--score-store", str(store), "--run-dir", str(tmp_path / seed))
        assert code == 0, err
    config = json.loads((tmp_path / "1" / "config.json").read_text())
    assert config["search"]["score_store"] == str(store.resolve()) and config["search"]["scoring_seed"] == 0
    assert store.stat().st_size > 0


def test_a_correlate_folder_answers_a_search_with_the_scores_live_scoring_gives(tmp_path, monkeypatch, capsys):
    """Real synflow: a search over cells an ``evonas correlate`` folder holds scores none of them again."""
    common = ["--space", "nb201", "--estimator", "synflow", "--dataset", "synthetic", "--batch-size", "8", "--seed", "0"]
    search = ["search", *common, "--budget", "5", "--population", "5", "--sample", "2", "--executor", "local"]
    code, _, err = run_cli(monkeypatch, capsys, *search, "--run-dir", str(tmp_path / "live"))
    assert code == 0, err
    live = [r for r in history_lines(tmp_path / "live") if r["status"] == "ok"]
    archs = tmp_path / "archs.csv"
    archs.write_text("arch,cifar10_test\n" + "".join(f"{r['genotype']},{50 + i}\n" for i, r in enumerate(live)))
    code, _, err = run_cli(monkeypatch, capsys, "correlate", *common, "--archs-file", str(archs),
                           "--out", str(tmp_path / "corr"))
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, *search, "--run-dir", str(tmp_path / "replay"),
                           "--score-store", str(tmp_path / "corr"))
    assert code == 0, err
    replay = [r for r in history_lines(tmp_path / "replay") if r["status"] == "ok"]
    assert [r["genotype"] for r in replay] == [r["genotype"] for r in live]
    assert [r["score"] for r in replay] == [r["score"] for r in live]
    assert {r["worker"] for r in replay if not r["cache_hit"] or r["worker"] == "store"} == {"store"}  # none scored
    assert not list((tmp_path / "corr").glob("*.lock"))  # read only: the folder is not written


def test_a_composite_is_combined_from_its_parts_stored_scores(tmp_path):
    """Parts are keyed as if scored alone, so a composite search reads them from any folder that has them."""
    norm = {"synflow": {"transform": "asinh", "center": 3.0, "scale": 2.0, "unit": 0.5},
            "params": {"transform": "identity", "center": 0.5, "scale": 0.25, "unit": 1.0}}
    common = dict(dataset="synthetic", batch_size=8, seed=0)
    config = resolve_scoring("nb201", "synflow+params=2", estimator_settings={"normalisation": norm}, **common)
    keys = {name: score_key(resolve_scoring("nb201", name, **common)) for name in ("synflow", "params")}
    lines = [{"arch": "a", "key": keys["synflow"], "status": "ok", "score": 40.0},
             {"arch": "a", "key": keys["params"], "status": "ok", "score": 0.7},
             {"arch": "b", "key": keys["synflow"], "status": "ok", "score": 9.0},  # no params score: left out
             {"arch": "c", "key": keys["synflow"], "status": "ok", "score": 1.0},
             {"arch": "c", "key": keys["params"], "status": "failed", "score": None}]
    (tmp_path / "scores.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    found = folder_scores(tmp_path, config)
    by_hand = (Normalisation.from_dict("synflow", norm["synflow"])(40.0)
               + 2 * Normalisation.from_dict("params", norm["params"])(0.7))
    assert found == {"a": pytest.approx(by_hand)}
    assert folder_scores(tmp_path, resolve_scoring("nb201", "synflow", **common)) == {"a": 40.0, "b": 9.0, "c": 1.0}


def test_a_folder_without_matching_scores_warns(tmp_path):
    (tmp_path / "scores.jsonl").write_text(json.dumps({"arch": "a", "key": "other", "status": "ok", "score": 1.0}) + "\n")
    with pytest.warns(UserWarning, match="holds no scores made with these settings"):
        ScoreCache(resolve_scoring("nb201", "synflow", dataset="synthetic"), tmp_path)
