"""Package bytes for a device: whole file, one byte range, or an X-Accel-Redirect for nginx to send them."""

from __future__ import annotations

import re
from urllib.parse import quote

from django.http import FileResponse, HttpResponse, StreamingHttpResponse

from console.models import ModelVersion
from devices import conf

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK_BYTES = 256 * 1024


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
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


def _identity_headers(response: HttpResponse, version: ModelVersion) -> HttpResponse:
    response["ETag"] = f'"{version.sha256}"'
    response["X-Content-SHA256"] = version.sha256
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = f"attachment; filename=\"{version.model.name}-v{version.number}.{version.format}\""
    response["Cache-Control"] = "private, no-store"
    return response


def package_response(version: ModelVersion, *, range_header: str | None, if_range: str | None) -> HttpResponse:
    etag = f'"{version.sha256}"'
    prefix = conf.accel_redirect_prefix()
    if prefix:
        # nginx serves the file (Range included) from its internal location; see docs/delivery.md.
        response = HttpResponse(content_type="application/octet-stream")
        response["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(version.file.name)
        return _identity_headers(response, version)
    size = version.size_bytes
    wanted = parse_range(range_header, size) if (if_range is None or if_range.strip() == etag) else None
    if wanted == "unsatisfiable":
        response = HttpResponse(status=416, content_type="application/octet-stream")
        response["Content-Range"] = f"bytes */{size}"
        return _identity_headers(response, version)
    handle = version.file.storage.open(version.file.name, "rb")
    if wanted is None:
        return _identity_headers(FileResponse(handle, content_type="application/octet-stream"), version)
    first, last = wanted
    handle.seek(first)
    if last == size - 1:
        # Open-ended (what the agent asks when it resumes): FileResponse, so the server can use sendfile.
        response = FileResponse(handle, status=206, content_type="application/octet-stream")
    else:
        response = StreamingHttpResponse(_slice(handle, last - first + 1), status=206,
                                         content_type="application/octet-stream")
        response["Content-Length"] = str(last - first + 1)
    response["Content-Range"] = f"bytes {first}-{last}/{size}"
    return _identity_headers(response, version)


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
