"""This process's connection to Ray: join a cluster or start a loopback-only local one.

Every socket of a local Ray stays on 127.0.0.1, and ``close`` stops or leaves only what
this session started.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile

import ray
from ray._private import ray_constants

from evonas.errors import EvonasError

#: Seconds to wait for a TCP connection to a Ray head before calling it unreachable.
CONNECT_TIMEOUT_S = 3.0
#: A single-machine Ray: every socket on 127.0.0.1, no token auth, no usage reports.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def check_reachable(address: str) -> None:
    """Fail in seconds, with what to do, when nothing listens at a ``HOST:PORT`` Ray address."""
    host, sep, port = address.rpartition(":")
    if not (sep and host and port.isdigit()):
        raise EvonasError(f"--address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379) or 'auto'")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        ip = "127.0.0.1" if _is_loopback(host) else host
        raise EvonasError(
            f"could not reach a Ray cluster at {address} ({exc.strerror or exc}): start a head there with "
            f"`ray start --head --node-ip-address {ip} --port {port}` or drop --address to use a local Ray"
        ) from None


def _is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.")


def stay_on_loopback() -> None:
    """Keep this driver and the Ray processes it starts on 127.0.0.1.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when it is imported; left on, it
    rewrites a 127.0.0.1 address to the machine's outward IP, where a loopback head is not
    listening. The environment covers the processes Ray starts, the constant this process.
    """
    os.environ.update(RAY_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False


class RaySession:
    """This process's connection to Ray; ``close`` stops or leaves only what it started.

    Joins ``address`` (``HOST:PORT`` or ``auto``), or starts a loopback-only local Ray with
    its own temp folder (removed on close); a Ray this process already connected is reused.
    """

    def __init__(
        self,
        address: str | None = None,
        temp_dir: str | None = None,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
    ) -> None:
        self.owned = not ray.is_initialized()
        self._temp_dir: str | None = None  # removed on close: we made it
        if not self.owned:
            return
        quiet = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
        if address is None:
            stay_on_loopback()
            if temp_dir is None:
                temp_dir = self._temp_dir = tempfile.mkdtemp(prefix="evonas-ray-")
            try:
                ray.init(
                    num_cpus=num_cpus, num_gpus=num_gpus, _temp_dir=temp_dir, _node_ip_address="127.0.0.1", **quiet
                )
            except BaseException:
                self.close()
                raise
            return
        loopback = {}
        if address != "auto":
            check_reachable(address)
            if _is_loopback(address.rpartition(":")[0]):
                stay_on_loopback()
                loopback = {"_node_ip_address": "127.0.0.1"}
        try:
            ray.init(address=address, **loopback, **quiet)
        except ConnectionError as exc:
            raise EvonasError(
                f"could not join a Ray cluster at {address!r} ({str(exc).splitlines()[0]}): start one with "
                "`ray start --head --node-ip-address 127.0.0.1 --port 6379` or drop --address"
            ) from None

    def close(self) -> None:
        if self.owned and ray.is_initialized():
            ray.shutdown()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
