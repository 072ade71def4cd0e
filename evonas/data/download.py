"""Fetch a dataset archive, verify its checksum and unpack one folder of it, all or nothing.

Everything happens in a hidden temporary folder inside the destination, and the wanted
folder is moved into place with one rename at the end, so a failed or interrupted download
never leaves a half-unpacked dataset behind. A file lock keeps parallel workers (several
Ray actors starting at once) from downloading the same archive twice.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Iterator

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 30.0


class DownloadError(Exception):
    """The archive could not be fetched, verified or unpacked; the message says why."""


def fetch_folder(url: str, root: Path, folder: str, *, md5: str | None = None,
                 sha256: str | None = None, timeout: float = TIMEOUT_S) -> Path:
    """Make ``root/folder`` exist by downloading ``url`` (a tar archive holding ``folder/``).

    At least one checksum is required; every one given must match.
    """
    expected = {algo: digest.lower() for algo, digest in (("md5", md5), ("sha256", sha256)) if digest}
    if not expected:
        raise ValueError("fetch_folder needs an md5 or a sha256 checksum")
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {root}: {exc.strerror or exc}") from None
    try:
        with _lock(root / f".{folder}.lock"):
            return _fetch(url, root, folder, expected, timeout)
    except DownloadError:
        if created:
            with contextlib.suppress(OSError):
                root.rmdir()  # a failed first download leaves no empty folder behind
        raise


def _fetch(url: str, root: Path, folder: str, expected: dict[str, str], timeout: float) -> Path:
    """Download, verify and unpack ``root/folder``; the caller holds the lock."""
    target = root / folder
    if target.is_dir():  # another process finished it while we waited for the lock
        return target
    try:
        tmp_ctx = tempfile.TemporaryDirectory(dir=root, prefix=f".{folder}.download-")
    except OSError as exc:
        raise DownloadError(f"cannot write to {root}: {exc.strerror or exc}") from None
    with tmp_ctx as tmp:
        archive = Path(tmp) / "archive"
        log.info("downloading %s to %s", url, root)
        digests = _download(url, archive, timeout)
        for algo, want in expected.items():
            if digests[algo] != want:
                raise DownloadError(f"the archive's {algo} is {digests[algo]}, expected {want} (corrupt download or wrong URL/checksum)")
        unpacked = Path(tmp) / "unpacked"
        _unpack(archive, unpacked)
        if not (unpacked / folder).is_dir():
            raise DownloadError(f"the archive holds no {folder}/ folder")
        try:
            (unpacked / folder).rename(target)
        except OSError as exc:
            if not target.is_dir():  # else a racing process got there first: keep its copy
                raise DownloadError(f"cannot move the unpacked folder to {target}: {exc.strerror or exc}") from None
    log.info("unpacked %s", target)
    return target


def _download(url: str, dest: Path, timeout: float) -> dict[str, str]:
    """Stream ``url`` into ``dest``; return its md5 and sha256 hex digests."""
    hashes = {"md5": hashlib.md5(usedforsecurity=False), "sha256": hashlib.sha256()}
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            size = response.headers.get("Content-Length")
            while chunk := response.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
                for h in hashes.values():
                    h.update(chunk)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise DownloadError(getattr(reason, "strerror", None) or str(reason)) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # timeouts, resets, bad URLs
        raise DownloadError(str(exc) or type(exc).__name__) from None
    if size is not None and size.isdigit() and int(size) != received:
        raise DownloadError(f"the download stopped after {received:,} of {int(size):,} bytes")
    return {algo: h.hexdigest() for algo, h in hashes.items()}


def _unpack(archive: Path, dest: Path) -> None:
    """Extract a tar archive that holds only plain files and folders with relative paths."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                path = PurePosixPath(m.name)
                if not (m.isfile() or m.isdir()) or path.is_absolute() or ".." in path.parts:
                    raise DownloadError(f"the archive holds an unsafe entry {m.name!r}")
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, members=members, **safe)
    except tarfile.ReadError:
        raise DownloadError("the archive cannot be unpacked (not a tar archive, or truncated)") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DownloadError(f"the archive cannot be unpacked ({' '.join(str(exc).split())})") from None


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock on ``path``; the file is removed before the release.

    A waiter that then gets the removed file's lock re-checks for the folder (and at worst
    downloads again); where locking is unavailable (Windows, some network file systems)
    the final rename still keeps a racing download from showing a half-made folder.
    """
    try:
        handle = open(path, "a")
    except OSError as exc:
        raise DownloadError(f"cannot write to {path.parent}: {exc.strerror or exc}") from None
    with handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
