"""Joining a real Ray cluster: a head started with ``ray start --head`` on 127.0.0.1.

The test starts the head in its own process group and stops exactly the processes it started
(that group and their descendants), never ``ray stop``, which would hit other people's Ray.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from evonas.errors import DataError
from evonas.execution import RayExecutor, check_reachable, make_executor
from evonas.execution.ray_session import RAY_ENV
from evonas.scoring import Scorer
from evonas.settings import ScoringSettings
from executor_helpers import CONFIG, drain, free_port, genotypes

RAY_BIN = Path(sys.executable).with_name("ray")
pytestmark = pytest.mark.timeout(300)  # a hung join fails the test instead of the whole run


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) for every live process, read from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":
                table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def _started_by(root: int) -> set[int]:
    """``root``, its descendants, and the members of its process group."""
    table = _processes()
    found = {pid for pid, (_, group) in table.items() if group == root} | {root}
    grew = True
    while grew:
        more = {pid for pid, (parent, _) in table.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found & set(table)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A one-CPU Ray head on 127.0.0.1 with ports of its own; yields its address."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="evonas-head-")  # short: Ray's socket paths must fit
    log = open(Path(temp_dir, "head.log"), "w")
    command = [
        str(RAY_BIN), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
        "--include-dashboard=false", f"--temp-dir={temp_dir}", "--num-cpus=1", "--disable-usage-stats",
        f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
    ]
    head = subprocess.Popen(
        command, start_new_session=True, env={**os.environ, **RAY_ENV}, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, f"ray start --head exited: {Path(temp_dir, 'head.log').read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not open its port within 120 s"
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        ours = _started_by(head.pid)
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=3)  # a graceful stop; a test head need not wait longer (it rarely ends in 10 s)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        for pid in ours & set(_processes()):  # anything that left the group, e.g. Ray's workers
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
        deadline = time.monotonic() + 10
        while ours & set(_processes()) and time.monotonic() < deadline:
            time.sleep(0.2)
        leftover = ours & set(_processes())
        assert not leftover, f"processes of the Ray head still alive: {sorted(leftover)}"


def test_executor_joins_a_running_head_and_leaves_it_running(ray_head):
    import ray

    gens = genotypes(3, seed=5)
    with make_executor(CONFIG, "ray", address=ray_head) as executor:
        assert executor.started == 1  # one actor per CPU the cluster has
        for job_id, genotype in enumerate(gens):
            executor.submit(job_id, genotype)
        results = sorted(drain(executor), key=lambda r: r.job_id)
    assert [r.job_id for r in results] == [0, 1, 2] and all(r.ok and r.worker.startswith("w0@127.0.0.1/") for r in results)
    assert [r.score for r in results] == [Scorer(CONFIG).score(g, eval_id=i).score for i, g in enumerate(gens)]
    assert not ray.is_initialized()  # the driver disconnected ...
    check_reachable(ray_head)  # ... and the cluster it joined is still up


def test_missing_data_on_a_worker_is_reported_as_the_data_error(ray_head, tmp_path):
    import ray

    config = ScoringSettings(space="nb201", estimator="params", dataset="imagenet16-120", data_dir=str(tmp_path))
    with pytest.raises(DataError, match="not found") as info:
        RayExecutor(config, address=ray_head)
    assert "\n" not in str(info.value)
    assert not ray.is_initialized()
    check_reachable(ray_head)
