"""Package bytes for a device: whole file, one byte range, an X-Accel-Redirect for nginx to send them, or, on
object storage, a redirect to a short-lived presigned URL (or the bytes streamed from the store).

Whatever answers, the agent checks the size and the sha256 of what it received against the signed manifest,
so a redirect to the store gives up nothing: the store's ETag is its own (not the sha256), which the agent
recognises and keeps for If-Range when it resumes. See docs/operations.md.
"""

from __future__ import annotations

import re
from typing import Literal, TypeVar
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from storages.backends.s3 import S3Storage

from console.models import ModelVersion
from devices import conf
from jobs.files import is_local

# At most 18 digits a side (any real offset fits): a longer number is a malformed header, not a 5,000-digit int().
_RANGE_RE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")
CHUNK_BYTES = 256 * 1024

AnyResponse = TypeVar("AnyResponse", bound=HttpResponseBase)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | Literal["unsatisfiable"]:
    """(first, last) byte of a single ``bytes=`` range; None to send the whole file; "unsatisfiable" for a 416.

    Several ranges or a malformed header are ignored (the whole file is sent), as RFC 9110 allows.
    """
    match = _RANGE_RE.match((header or "").strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # suffix range: the last N bytes
        length = int(match[2])
        return (max(0, size - length), size - 1) if length else "unsatisfiable"
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    if first >= size:
        return "unsatisfiable"
    if last < first:
        return None
    return first, last


def _disposition(version: ModelVersion) -> str:
    return f'attachment; filename="{version.model.name}-v{version.number}.{version.format}"'


def _stored_name(version: ModelVersion) -> str:
    name = version.file.name
    # FieldFile allows None for a field never set; the column is NOT NULL, so a stored version always has a name.
    assert name is not None
    return name


def _identity_headers(response: AnyResponse, version: ModelVersion) -> AnyResponse:
    response["ETag"] = f'"{version.sha256}"'
    response["X-Content-SHA256"] = version.sha256
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = _disposition(version)
    response["Cache-Control"] = "private, no-store"
    return response


def _redirect_to_store(version: ModelVersion, storage: S3Storage) -> HttpResponse:
    """302 to a presigned GET of the object; the store answers Range and If-Range itself.

    The URL lives STORAGE_PRESIGNED_URL_TTL_S seconds (the store checks it when a request starts, so a long
    download outlives it); an agent that retries asks here again and gets a fresh one.
    """
    url = storage.url(
        version.file.name,
        parameters={
            "ResponseContentDisposition": _disposition(version),
            "ResponseContentType": "application/octet-stream",
        },
    )
    response = HttpResponseRedirect(url)
    response["X-Content-SHA256"] = version.sha256
    response["Cache-Control"] = "private, no-store"  # a shared cache must not hand the signed URL to another device
    return response


def package_response(version: ModelVersion, *, range_header: str | None, if_range: str | None) -> HttpResponseBase:
    etag = f'"{version.sha256}"'
    storage = version.file.storage
    local = is_local(storage)
    if not local and isinstance(storage, S3Storage) and settings.STORAGE_DOWNLOADS != "stream":
        return _redirect_to_store(version, storage)
    prefix = conf.accel_redirect_prefix()
    if prefix and local:
        # nginx serves the file (Range included) from its internal location; see docs/delivery.md.
        response = HttpResponse(content_type="application/octet-stream")
        response["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(_stored_name(version))
        return _identity_headers(response, version)
    size = version.size_bytes
    wanted = parse_range(range_header, size) if (if_range is None or if_range.strip() == etag) else None
    if wanted == "unsatisfiable":
        response = HttpResponse(status=416, content_type="application/octet-stream")
        response["Content-Range"] = f"bytes */{size}"
        return _identity_headers(response, version)
    if not local:
        return _identity_headers(_stream_from_store(version, wanted), version)
    handle = storage.open(_stored_name(version), "rb")
    if wanted is None:
        return _identity_headers(FileResponse(handle, content_type="application/octet-stream"), version)
    first, last = wanted
    handle.seek(first)
    partial: StreamingHttpResponse
    if last == size - 1:
        # Open-ended (what the agent asks when it resumes): FileResponse, so the server can use sendfile.
        partial = FileResponse(handle, status=206, content_type="application/octet-stream")
    else:
        partial = StreamingHttpResponse(
            _slice(handle, last - first + 1), status=206, content_type="application/octet-stream"
        )
        partial["Content-Length"] = str(last - first + 1)
    partial["Content-Range"] = f"bytes {first}-{last}/{size}"
    return _identity_headers(partial, version)


def _stream_from_store(version: ModelVersion, wanted: tuple[int, int] | None) -> StreamingHttpResponse:
    """The object's bytes (or one range) relayed from object storage in chunks, never held whole."""
    size = version.size_bytes
    first, last = wanted or (0, size - 1)
    handle = version.file.storage.open(_stored_name(version), "rb")
    s3_object = getattr(handle, "obj", None)
    if s3_object is not None:
        # Ask the store for just the range: S3File.read() would first copy the whole object into a buffer.
        body = s3_object.get(Range=f"bytes={first}-{last}")["Body"]
        handle.close()
        chunks = _body_chunks(body)
    else:
        handle.seek(first)
        chunks = _slice(handle, last - first + 1)
    response = StreamingHttpResponse(
        chunks, status=200 if wanted is None else 206, content_type="application/octet-stream"
    )
    response["Content-Length"] = str(last - first + 1)
    if wanted is not None:
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    return response


def _body_chunks(body):
    try:
        yield from body.iter_chunks(CHUNK_BYTES)
    finally:
        body.close()


def _slice(handle, length: int):
    try:
        while length > 0:
            chunk = handle.read(min(CHUNK_BYTES, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
    finally:
        handle.close()
