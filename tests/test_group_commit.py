"""Group commit of history.jsonl: lines reach the kernel at once, fsyncs come in groups, and the
kill -9 guarantee holds exactly: an evaluation counts iff its line is durable, the checkpoint
never covers a line that is not, and a result lost in a crash is proposed and scored again."""
from __future__ import annotations

import json
import os
import time

import pytest
from search_fakes import ShuffledExecutor, recording_factory

from evonas import runs
from evonas.runs import HistoryWriter, RunRecord
from evonas.searching import resume_search, start_search
from evonas.settings import SearchSettings

CFG = SearchSettings(space="nb201", estimator="params", budget=40, population=6, sample=2, seed=1, checkpoint_every=5, checkpoint_seconds=0)


class Killed(BaseException):
    """Stands in for the machine dying."""


@pytest.fixture
def fsyncs(monkeypatch) -> list[int]:
    """Counts fsync calls (on any file) while the test runs."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lines_reach_the_file_at_once_and_are_fsynced_in_one_group(tmp_path, fsyncs):
    path = tmp_path / "history.jsonl"
    writer = HistoryWriter(path, interval=3600)  # no background sync during the test
    for i in range(500):
        writer.append(json.dumps({"id": i}) + "\n")
    assert [r["id"] for r in _lines(path)] == list(range(500))  # a kill of the process now loses none
    assert (writer.written, writer.durable, len(fsyncs)) == (500, 0, 0)
    writer.sync()
    writer.sync()  # nothing new: no second fsync
    assert (writer.durable, len(fsyncs)) == (500, 1)
    writer.close()


def test_background_sync_makes_lines_durable_within_the_interval(tmp_path, fsyncs):
    writer = HistoryWriter(tmp_path / "history.jsonl", interval=0.05)
    for i in range(2000):
        writer.append(json.dumps({"id": i}) + "\n")
    deadline = time.monotonic() + 10
    while writer.durable < 2000:
        assert time.monotonic() < deadline, "the background sync never caught up"
        time.sleep(0.01)
    assert 1 <= len(fsyncs) < 200  # grouped, not one per line
    writer.close()


def test_interval_zero_fsyncs_every_line(tmp_path, fsyncs):
    writer = HistoryWriter(tmp_path / "history.jsonl", interval=0)
    for i in range(5):
        writer.append(json.dumps({"id": i}) + "\n")
        assert writer.durable == i + 1
    assert len(fsyncs) == 5
    writer.close()


def test_a_checkpoint_never_covers_a_line_that_is_not_durable(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "SYNC_INTERVAL_S", 3600)  # only the checkpoints sync
    seen = []
    real = RunRecord.write_checkpoint

    def checked(self, state):
        writer = self._history
        durable = writer.durable if writer is not None else 0
        seen.append((state["evaluations"], durable, writer.written if writer is not None else 0))
        real(self, state)

    monkeypatch.setattr(RunRecord, "write_checkpoint", checked)
    start_search(CFG, run_dir=tmp_path / "r", executor_factory=lambda s, c: ShuffledExecutor(s, num_workers=3))
    assert len(seen) >= 9 and seen[-1][0] == 40
    assert all(evaluations <= durable == written for evaluations, durable, written in seen)


@pytest.mark.parametrize("crash", ["process", "machine"])
def test_killed_during_a_group_commit_resumes_to_exactly_the_budget(tmp_path, monkeypatch, crash):
    """Lines 21-25 are appended, then the sync before the checkpoint at 25 is killed.

    ``process``: kill -9 of evonas alone; the kernel still writes lines 21-25, and the resume
    replays them. ``machine``: a crash loses everything not fsync'ed (lines 21-25, the last one
    torn); those results were never counted and are proposed and scored again.
    """
    monkeypatch.setattr(runs, "SYNC_INTERVAL_S", 3600)  # only the checkpoints sync
    run_dir = tmp_path / "r"
    state: dict = {"dead": False}
    real_sync = HistoryWriter.sync

    def dying_sync(self):
        if state["dead"] or self.written == 25:
            if not state["dead"]:
                state.update(dead=True, writer=self, durable=self.durable)
            raise Killed  # between the append of lines 21-25 and their fsync; every later sync fails too
        real_sync(self)

    monkeypatch.setattr(HistoryWriter, "sync", dying_sync)
    with pytest.raises(Killed):
        start_search(CFG, run_dir=run_dir, executor_factory=lambda s, c: ShuffledExecutor(s, num_workers=3, seed=2))
    assert state["durable"] == 20
    monkeypatch.setattr(HistoryWriter, "sync", real_sync)
    state["writer"].close()  # release the file (a dead process would have)

    history = run_dir / "history.jsonl"
    checkpoint = json.loads((run_dir / "checkpoint.json").read_text())
    assert checkpoint["evaluations"] == 20  # the checkpoint at 25 never happened
    written = history.read_text().splitlines(keepends=True)
    assert len(written) == 25
    if crash == "machine":
        history.write_text("".join(written[:20]) + written[20][:17])  # unsynced lines gone, one torn
    kept = _lines(history) if crash == "process" else [json.loads(line) for line in written[:20]]
    lost = [json.loads(line) for line in written[len(kept):]]

    factory, resumed = recording_factory()
    resume_search(run_dir, executor_factory=factory)
    after = _lines(history)
    ids = [r["id"] for r in after]
    assert len(after) == 40 and len(set(ids)) == 40  # exactly the budget, nothing repeated
    assert after[:len(kept)] == kept  # nothing durable was lost or changed
    in_flight = {int(i) for i in checkpoint["pending"]}
    if crash == "machine":
        rescored = {r["id"] for r in lost if not r["cache_hit"]} & in_flight
        assert rescored and rescored <= set(resumed[0].submitted)  # lost results were scored again
    else:
        assert not {r["id"] for r in kept} & set(resumed[0].submitted)  # replayed, not scored again
    assert json.loads((run_dir / "best.json").read_text())["complete"]
