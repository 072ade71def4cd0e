"""Score cache: what its key covers, and duplicate children answered without scoring."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from evonas.searching.cache import ScoreCache, scoring_fingerprint
from evonas.settings import SearchSettings
from evonas.settings import ScoringSettings
from evonas.searching import start_search
from search_fakes import FakeScorer, fake_score, local_fake

BASE = ScoringSettings(space="nb201", estimator="sweet", estimator_settings={"interval": [1e-4, 5e-4]})


@pytest.mark.parametrize("change", [
    {"estimator": "sweet_snip"},
    {"estimator_settings": {"interval": [1e-5, 5e-5]}},
    {"batch_policy": "fresh"},
    {"seed": 1},
    {"batch_size": 32},
    {"dataset": "cifar100"},
    {"build_options": {"channels": 8}},
])
def test_every_score_affecting_setting_changes_the_cache_key(change):
    assert scoring_fingerprint(replace(BASE, **change)) != scoring_fingerprint(BASE)


def test_data_folder_does_not_change_the_cache_key():
    assert scoring_fingerprint(replace(BASE, data_dir="/elsewhere")) == scoring_fingerprint(BASE)


def test_cache_keeps_first_score_and_separates_settings():
    cache = ScoreCache(BASE)
    assert cache.get("k") is None
    cache.put("k", 3.0)
    cache.put("k", 4.0)
    assert cache.get("k") == 3.0 and "k" in cache and len(cache) == 1
    cache.fill([{"key": "a", "score": None, "status": "failed"}, {"key": "b", "score": 2.0, "status": "ok"}])
    assert cache.get("a") is None and cache.get("b") == 2.0


def test_duplicate_children_are_answered_from_the_cache(tmp_path):
    cfg = SearchSettings(space="nb201", estimator="params", budget=80, population=6, sample=3, seed=2)
    run = start_search(cfg, run_dir=tmp_path / "r", executor_factory=local_fake)
    hist = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    hits = [r for r in hist if r["cache_hit"]]
    assert len(hist) == 80 and len(hits) > 5  # evolution revisits isomorphic cells often
    assert len(FakeScorer.calls) == 80 - len(hits)  # hits were never sent to the scorer
    assert len(set(FakeScorer.calls)) == len(FakeScorer.calls)  # no key was scored twice
    first = {}
    for r in hist:
        if not r["cache_hit"]:
            first.setdefault(r["key"], r["score"])
    for r in hits:
        assert r["score"] == first[r["key"]] == fake_score(r["key"])
        assert r["worker"] == "cache" and r["seconds"] == 0 and r["status"] == "ok"
    best = json.loads((run / "best.json").read_text())
    assert best["cache_hits"] == len(hits) and best["cache_hit_rate"] == pytest.approx(len(hits) / 80)
