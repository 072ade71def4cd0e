"""The ask/tell loop: same proposals as the driver, durable tells, exact continuation after a kill."""
from __future__ import annotations

import json
import math

import pytest

import evonas
import search_spaces
from cli_helpers import run_cli
from evonas.errors import EvonasError
from evonas.searching import open_loop, resume_search, start_search
from evonas.settings import SearchSettings
from search_fakes import fake_score, history_lines, local_fake

PINNED = ("id", "genotype", "key", "parent", "score", "status", "cache_hit")
#: Each strategy's loop arguments (nsga2 also optimises params, told with every score).
LOOPS = {
    "aging": {"strategy": "aging", "population": 5, "sample": 2},
    "random": {"strategy": "random"},
    "nsga2": {"strategy": "nsga2", "population": 5, "sample": 2, "cost_objectives": ("params",)},
}


def _costs(strategy: str, key: str) -> dict[str, float] | None:
    return {"params": float(len(key) % 7 + 1)} if strategy == "nsga2" else None


def _pinned(history: list[dict]) -> list[dict]:
    return [{k: r.get(k) for k in PINNED} for r in history]


def _evaluate(loop, strategy: str, asks: int, asked: list[str]) -> None:
    """``asks`` rounds of ask, evaluate with the fake score, tell; every asked genotype goes to ``asked``."""
    space = search_spaces.get("nb201")
    for _ in range(asks):
        genotype = loop.ask()
        asked.append(genotype)
        key = space.str_key(genotype)
        loop.tell(genotype, fake_score(key), costs=_costs(strategy, key))


def test_a_sequential_loop_proposes_exactly_what_the_driver_does(tmp_path):
    """One worker, the same seed and scores: the loop's history is the driver's, line for line."""
    settings = SearchSettings(space="nb201", estimator="params", budget=30, population=5, sample=2, seed=2)
    run = start_search(settings, run_dir=tmp_path / "driver", executor_factory=local_fake)
    with open_loop(tmp_path / "loop", space="nb201", seed=2, population=5, sample=2) as loop:
        _evaluate(loop, "aging", 30, [])
        history = loop.history
    assert _pinned(history[:30]) == _pinned(history_lines(run))
    assert any(r["cache_hit"] for r in history)  # repeats were answered from earlier scores, not asked


@pytest.mark.parametrize("strategy", list(LOOPS))
def test_reopening_after_a_kill_continues_exactly(tmp_path, strategy):
    """Killed while the caller evaluates an ask (and once between a tell's history line and its
    checkpoint): the reopened loop asks that cell again, then exactly what a loop that never died asks."""
    asked_whole: list[str] = []
    with open_loop(tmp_path / "whole", seed=5, **LOOPS[strategy]) as loop:
        _evaluate(loop, strategy, 24, asked_whole)
        whole = loop.history

    folder = tmp_path / "killed"
    asked: list[str] = []
    loop = open_loop(folder, seed=5, **LOOPS[strategy])
    _evaluate(loop, strategy, 10, asked)
    genotype = loop.ask()
    asked.append(genotype)
    before_tell = (folder / "checkpoint.json").read_bytes()
    key = search_spaces.get("nb201").str_key(genotype)
    loop.tell(genotype, fake_score(key), costs=_costs(strategy, key))
    loop.close()
    (folder / "checkpoint.json").write_bytes(before_tell)  # died after the history line, before the checkpoint
    with open_loop(folder) as loop:
        _evaluate(loop, strategy, 5, asked)
        in_evaluation = loop.ask()  # handed out, never told: the process dies here
        asked.append(in_evaluation)
    with open(folder / "history.jsonl", "a") as fh:
        fh.write('{"id": 999, "genot')  # and its last write was torn
    with open_loop(folder, seed=5) as loop:
        assert loop.pending == [in_evaluation]
        key = search_spaces.get("nb201").str_key(in_evaluation)
        genotype = loop.ask()
        assert genotype == in_evaluation  # asked again
        loop.tell(genotype, fake_score(key), costs=_costs(strategy, key))
        _evaluate(loop, strategy, 24 - 17, asked)
        assert _pinned(loop.history) == _pinned(whole)
        assert not loop.pending
    assert asked == asked_whole  # the re-ask aside, the very same cells were asked


def test_several_open_asks_come_back_in_order_and_may_be_told_without_asking(tmp_path):
    loop = open_loop(tmp_path / "l", seed=1, population=4, sample=2)
    first, second, third = loop.ask(), loop.ask(), loop.ask()
    loop.close()
    with open_loop(tmp_path / "l") as loop:
        assert loop.pending == [first, second, third]
        loop.tell(second, 1.0)  # finished while the old process was dying: told without asking again
        assert [loop.ask(), loop.ask()] == [first, third]
        fresh = loop.ask()
        assert fresh not in (first, second, third) and loop.pending == [first, third, fresh]


def test_failed_and_unasked_cells_and_the_best(tmp_path):
    space = search_spaces.get("nb201")
    own = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    with evonas.ask_tell(tmp_path / "l", space="nb201", seed=0, population=3, sample=2) as loop:
        failed, nan = loop.ask(), loop.ask()
        loop.tell(failed, None)
        loop.tell(nan, math.nan)
        loop.tell(own, 100.0)  # a cell of the caller's own, never asked
        rows = loop.history
        assert [r["status"] for r in rows] == ["failed", "failed", "ok"] and rows[2]["parent"] is None
        assert rows[2]["key"] == space.str_key(own) and rows[2]["id"] == 2
        assert loop.best.genotype == own and loop.best.score == 100.0
    run = evonas.Run.load(tmp_path / "l")  # the folder is an ordinary run folder
    assert run.best.genotype == own and run.settings.algorithm == "aging"


@pytest.mark.parametrize("call, fragment", [
    (lambda loop: loop.tell(loop.ask(), "high"), "a score is a number"),
    (lambda loop: loop.tell("|bogus~0|", 1.0), "tell():"),
    (lambda loop: loop.tell(loop.ask(), 1.0, costs={"watts": 1.0}), "unknown cost 'watts'"),
])
def test_bad_tells_are_one_line_errors(tmp_path, call, fragment):
    with open_loop(tmp_path / "l", population=3, sample=2) as loop:
        with pytest.raises(EvonasError) as caught:
            call(loop)
        assert fragment in str(caught.value) and "\n" not in str(caught.value)
        assert loop.history == []  # nothing was recorded


def test_multi_objective_tells_need_their_costs(tmp_path):
    with open_loop(tmp_path / "l", population=3, sample=2, cost_objectives=("params",)) as loop:
        assert loop.settings.algorithm == "nsga2"
        genotype = loop.ask()
        with pytest.raises(EvonasError, match="optimises params too"):
            loop.tell(genotype, 1.0)
        loop.tell(genotype, None)  # a failure needs no costs
        other = loop.ask()
        loop.tell(other, 2.0, costs={"params": 0.5})
        assert [c.genotype for c in loop.front()] == [other]


def test_show_says_how_to_continue_a_loop(tmp_path, monkeypatch, capsys):
    with open_loop(tmp_path / "l", strategy="random") as loop:
        loop.tell(loop.ask(), 1.0)
    code, out, _ = run_cli(monkeypatch, capsys, "show", str(tmp_path / "l"))
    assert code == 0 and "external" in out and "random" in out and "evonas.ask_tell(" in out


def test_a_reopen_must_not_change_the_loop(tmp_path):
    open_loop(tmp_path / "l", seed=3, population=4, sample=2).close()
    with pytest.raises(EvonasError, match="seed=3, not 4"):
        open_loop(tmp_path / "l", seed=4)
    with pytest.raises(EvonasError, match="strategy='aging', not 'random'"):
        open_loop(tmp_path / "l", strategy="random")
    run = start_search(SearchSettings(space="nb201", estimator="params", budget=4, population=2, sample=1),
                       run_dir=tmp_path / "search", executor_factory=local_fake)
    with pytest.raises(EvonasError, match="not an ask/tell loop"):
        open_loop(run)
    with pytest.raises(EvonasError, match="holds an ask/tell loop"):
        resume_search(tmp_path / "l")
    with pytest.raises(EvonasError, match="--algorithm must be one of"):
        evonas.ask_tell(tmp_path / "new", strategy="annealing")
    assert json.loads((tmp_path / "l" / "config.json").read_text())["estimator"]["name"] == "external"
