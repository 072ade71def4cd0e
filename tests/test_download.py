"""Downloading CIFAR when the data folder lacks it, against an HTTP server on 127.0.0.1 that the tests run."""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import socket
import tarfile
import threading
from pathlib import Path

import pytest
import torch
from test_data import full_cifar10_counts, write_cifar10

from evonas.data import load_dataset
from evonas.errors import DataError


class Server:
    """Serves a folder on 127.0.0.1 and remembers the paths it was asked for."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def tar_folder(source: Path, archive: Path, arcname: str) -> dict[str, str]:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=arcname)
    data = archive.read_bytes()
    return {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.fixture()
def served(tmp_path):
    """A small CIFAR-10 archive (5 x 4 training images, 4 test images) behind a local server."""
    site = tmp_path / "site"
    site.mkdir()
    content = write_cifar10(tmp_path / "build", full_cifar10_counts(4))
    sums = tar_folder(tmp_path / "build" / "cifar-10-batches-py", site / "cifar-10-python.tar.gz", "cifar-10-batches-py")
    (site / "not-a-tar.tar.gz").write_bytes(b"hello")
    tar_folder(tmp_path / "build" / "cifar-10-batches-py", site / "wrong-folder.tar.gz", "something-else")
    server = Server(site)
    yield server, server.url("cifar-10-python.tar.gz"), sums, content
    server.close()


def leftovers(folder: Path) -> list[str]:
    """Anything in ``folder`` besides the dataset (no lock file, archive or temporary folder)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "cifar-10-batches-py")


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_good_archive_is_downloaded_verified_unpacked_and_loaded(tmp_path, served):
    server, url, sums, content = served
    dest = tmp_path / "data"
    ds = load_dataset("cifar10", data_dir=dest, url=url, md5=sums["md5"])
    assert len(ds) == 20 and ds.labels.tolist() == sum((content[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert torch.equal(ds.images[:4].flatten(1), torch.from_numpy(content["data_batch_1"][0]))
    assert (dest / "cifar-10-batches-py" / "test_batch").is_file() and leftovers(dest) == []
    assert len(load_dataset("cifar10", "test", data_dir=dest, url=url, md5=sums["md5"])) == 4
    assert server.requests == ["/cifar-10-python.tar.gz"], "the second load must find the unpacked folder"


def test_url_and_sha256_from_environment_into_the_user_cache(tmp_path, served, monkeypatch):
    server, url, sums, _ = served
    monkeypatch.delenv("EVONAS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("EVONAS_CIFAR10_URL", url)
    monkeypatch.setenv("EVONAS_CIFAR10_SHA256", sums["sha256"])
    assert len(load_dataset("cifar10", "test")) == 4
    assert (tmp_path / "cache" / "evonas" / "data" / "cifar-10-batches-py" / "test_batch").is_file()


def test_a_failed_download_into_an_existing_folder_keeps_the_folder_and_only_it(tmp_path, served):
    server, url, _, _ = served
    dest = tmp_path / "data"
    (dest / "other").mkdir(parents=True)
    with pytest.raises(DataError, match="md5 is"):
        load_dataset("cifar10", data_dir=dest, url=url, md5="0" * 32)
    assert leftovers(dest) == ["other"]


def test_parallel_loads_download_once(tmp_path, served):
    server, url, sums, _ = served
    results, errors = [], []

    def load() -> None:
        try:
            results.append(len(load_dataset("cifar10", "test", data_dir=tmp_path / "data", url=url, md5=sums["md5"])))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [4, 4, 4]
    assert len(server.requests) == 1


@pytest.mark.parametrize("name, checksum, expect", [
    ("cifar-10-python.tar.gz", {"md5": "0" * 32}, "md5 is [0-9a-f]{32}, expected 0{32}"),
    ("cifar-10-python.tar.gz", {"sha256": "f" * 64}, "sha256 is [0-9a-f]{64}, expected f{64}"),
    ("not-a-tar.tar.gz", "md5-of-file", "cannot be unpacked"),
    ("wrong-folder.tar.gz", "md5-of-file", "holds no cifar-10-batches-py/ folder"),
    ("missing.tar.gz", {"md5": "0" * 32}, "HTTP 404"),
])
def test_a_bad_download_leaves_nothing_behind(tmp_path, served, name, checksum, expect):
    server, _, _, _ = served
    if checksum == "md5-of-file":
        checksum = {"md5": hashlib.md5((tmp_path / "site" / name).read_bytes()).hexdigest()}
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=expect) as info:
        load_dataset("cifar10", data_dir=dest, url=server.url(name), **checksum)
    assert "\n" not in str(info.value) and server.url(name) in str(info.value)
    assert not dest.exists(), "a failed first download leaves no folder"


def test_an_archive_reaching_outside_its_folder_is_refused(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    with tarfile.open(site / "evil.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    server = Server(site)
    try:
        md5 = hashlib.md5((site / "evil.tar.gz").read_bytes()).hexdigest()
        with pytest.raises(DataError, match="unsafe entry '../escaped'"):
            load_dataset("cifar10", data_dir=tmp_path / "data", url=server.url("evil.tar.gz"), md5=md5)
    finally:
        server.close()
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "data").exists()


def test_no_network_gives_one_error_naming_the_folder_and_the_fixes(tmp_path):
    dest = tmp_path / "data"
    url = f"http://127.0.0.1:{unused_port()}/cifar-10-python.tar.gz"
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", data_dir=dest, url=url, md5="0" * 32)
    message = str(info.value)
    assert message.startswith(f"CIFAR-10 not found: no cifar-10-batches-py/ in {dest} (given by --data-dir)")
    for part in ("Connection refused", "--data-dir DIR", "EVONAS_DATA=DIR", "EVONAS_CIFAR10_URL"):
        assert part in message
    assert "\n" not in message and info.value.__cause__ is None and info.value.__suppress_context__
    assert not dest.exists()


def test_download_off_fails_the_same_way_without_a_request(tmp_path, served, monkeypatch):
    server, url, sums, _ = served
    monkeypatch.setenv("EVONAS_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("EVONAS_CIFAR10_URL", url)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", download=False, md5=sums["md5"])
    message = str(info.value)
    assert message.startswith(f"CIFAR-10 not found: no cifar-10-batches-py/ in {tmp_path / 'env'} (from $EVONAS_DATA)")
    assert "--data-dir DIR" in message and "EVONAS_DATA=DIR" in message and "\n" not in message
    assert server.requests == [] and not (tmp_path / "env").exists()


def test_an_unusable_data_folder_is_named_in_the_error(tmp_path, served):
    _, url, sums, _ = served
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=f"downloading {url} failed: cannot create {blocker}"):
        load_dataset("cifar10", data_dir=blocker, url=url, md5=sums["md5"])
