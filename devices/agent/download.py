"""Resumable package download into the sha256-named cache.

Bytes go to ``<sha256>.part`` (0600). A broken connection keeps the part; the
next attempt asks for ``Range: bytes=<size of part>-`` with ``If-Range:
<ETag seen when the part was started>`` so a server that now holds different
bytes answers 200 with the whole file instead of a wrong tail. Only a file
whose sha256 matches the manifest is renamed to ``<sha256>.onnx``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from email.message import Message
from pathlib import Path

from devices.agent.errors import DownloadError, TransportError
from devices.agent.storage import fsync_dir, open_private, read_json, write_private_json
from devices.agent.transport import NETWORK_ERRORS, Transport

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_package(
    transport: Transport,
    url: str,
    destination: Path,
    *,
    sha256: str,
    size: int,
    auth_token: str | None = None,
    attempts: int = 3,
    retry_delay_s: float = 1.0,
) -> Path:
    """Download ``url`` to ``destination`` (resuming ``destination.part``) and verify size and sha256.

    Raises ``DownloadError``: ``permanent=True`` when the server's bytes are not
    the manifest's (sha256, size or ETag disagree), else retryable (network,
    HTTP status, still incomplete after ``attempts``; the part is kept for next time).
    """
    part = destination.with_name(destination.name + ".part")
    meta_path = destination.with_name(destination.name + ".part.json")
    last_problem = "no attempt made"
    for attempt in range(1, attempts + 1):
        if attempt > 1 and retry_delay_s:
            time.sleep(retry_delay_s * (attempt - 1))
        offset = part.stat().st_size if part.exists() else 0
        if offset > size:
            _discard(part, meta_path)
            offset = 0
        if offset == size and size > 0:
            break  # a previous run got every byte but stopped before verifying
        headers = {}
        etag = (read_json(meta_path, {}) or {}).get("etag") if offset else None
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if etag:
                headers["If-Range"] = etag
        try:
            done, last_problem = _fetch(transport, url, part, meta_path, offset, sha256, size, headers, auth_token)
        except TransportError as exc:
            done, last_problem = False, str(exc)
        if done:
            break
        log.info("download of %s stopped (%s); attempt %d of %d", sha256[:12], last_problem, attempt, attempts)
    else:
        raise DownloadError(f"download incomplete after {attempts} attempts: {last_problem}")
    actual = file_sha256(part)
    if actual != sha256:
        _discard(part, meta_path)
        raise DownloadError(f"sha256 mismatch: got {actual}, manifest says {sha256}", permanent=True)
    os.replace(part, destination)
    fsync_dir(destination.parent)
    meta_path.unlink(missing_ok=True)
    return destination


def _fetch(
    transport: Transport,
    url: str,
    part: Path,
    meta_path: Path,
    offset: int,
    sha256: str,
    size: int,
    headers: dict[str, str],
    auth_token: str | None,
) -> tuple[bool, str]:
    """One request; returns (complete, what went wrong). Raises ``DownloadError`` for permanent problems."""
    with transport.open(url, headers=headers, auth_token=auth_token) as stream:
        if stream.status == 416:
            # Our part does not fit the server's file: start over on the next attempt.
            _discard(part, meta_path)
            return False, "HTTP 416: the partial file does not fit the server's file"
        if stream.status not in (200, 206):
            return False, f"HTTP {stream.status}"
        _check_identity(stream.headers, sha256)
        if stream.status == 206:
            match = _CONTENT_RANGE_RE.match(stream.headers.get("Content-Range", ""))
            if match is None or int(match[1]) != offset:
                _discard(part, meta_path)
                return False, f"unexpected Content-Range {stream.headers.get('Content-Range')!r}"
            if match[3] != "*" and int(match[3]) != size:
                raise DownloadError(f"server file has {match[3]} bytes, manifest says {size}", permanent=True)
        else:
            offset = 0  # the server sent the whole file (no range support, or If-Range did not match)
            length = stream.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) != size:
                raise DownloadError(f"server file has {length} bytes, manifest says {size}", permanent=True)
        etag = stream.headers.get("ETag")
        if etag:
            write_private_json(meta_path, {"etag": etag})
        flags = os.O_WRONLY | (os.O_APPEND if offset else os.O_TRUNC)
        with os.fdopen(open_private(part, flags), "ab" if offset else "wb") as handle:
            received = offset
            try:
                while chunk := stream.read(CHUNK_SIZE):
                    received += len(chunk)
                    if received > size:
                        handle.close()
                        _discard(part, meta_path)
                        raise DownloadError(f"server sent more than the manifest's {size} bytes", permanent=True)
                    handle.write(chunk)
            except NETWORK_ERRORS as exc:
                return False, f"connection broke at byte {received} of {size} ({exc.__class__.__name__})"
            finally:
                if not handle.closed:
                    handle.flush()
                    os.fsync(handle.fileno())
    if received < size:
        return False, f"connection closed at byte {received} of {size}"
    return True, ""


def _check_identity(headers: Message, sha256: str) -> None:
    """Refuse a server that says outright it is serving other bytes (ETag or X-Content-SHA256)."""
    advertised = (headers.get("X-Content-SHA256") or "").strip().lower()
    if advertised and advertised != sha256:
        raise DownloadError(f"server serves sha256 {advertised}, manifest says {sha256}", permanent=True)
    etag = (headers.get("ETag") or "").strip()
    bare = etag.removeprefix("W/").strip('"').lower()
    # Only an ETag shaped like a sha256 is one; other stores (S3) use their own ETags.
    if _SHA256_RE.match(bare) and bare != sha256:
        raise DownloadError(f"server ETag {etag} is not the manifest's sha256 {sha256}", permanent=True)


def _discard(part: Path, meta_path: Path) -> None:
    part.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
