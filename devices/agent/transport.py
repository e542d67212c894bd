"""HTTP for the agent on the standard library (urllib): JSON calls and streamed downloads.

Error statuses come back as responses, not exceptions: the agent decides what
a 304, 409 or 416 means. Network failures raise ``TransportError``.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

from devices.agent.errors import TransportError

USER_AGENT = "model-agent/1"
NETWORK_ERRORS = (OSError, http.client.HTTPException)  # URLError, timeouts and resets are OSErrors


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise TransportError(f"HTTP {self.status}: the answer is not JSON") from exc


class Stream:
    """An open download: ``status``, ``headers`` and ``read(n)`` over the body; close it (or use ``with``)."""

    def __init__(self, status: int, headers: Message, raw: Any) -> None:
        self.status = status
        self.headers = headers
        self._raw = raw

    def read(self, size: int) -> bytes:
        return self._raw.read(size)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_origin(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


class Transport:
    """One place for every HTTP exchange, so tests and the simulator can wrap it."""

    def __init__(self, *, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener()
        # A proxy from the environment must never see loopback traffic (tests, simulator).
        self._direct_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        auth_token: str | None = None,
    ) -> Response:
        data = None if json_body is None else json.dumps(json_body).encode()
        request = self._build(method, url, data, headers, auth_token)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        raw = self._open(request)
        try:
            body = raw.read()
        except NETWORK_ERRORS as exc:
            raise TransportError(f"{method} {url}: connection broke while reading the answer ({exc})") from exc
        finally:
            raw.close()
        return Response(raw.status if hasattr(raw, "status") else raw.code, raw.headers, body)

    def open(self, url: str, *, headers: dict[str, str] | None = None, auth_token: str | None = None) -> Stream:
        raw = self._open(self._build("GET", url, None, headers, auth_token))
        return Stream(raw.status if hasattr(raw, "status") else raw.code, raw.headers, raw)

    def _build(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str] | None, auth_token: str | None
    ) -> urllib.request.Request:
        if urlsplit(url).scheme not in ("http", "https"):
            raise TransportError(f"refusing a non-HTTP URL: {url}")
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("User-Agent", USER_AGENT)
        request.add_header("Accept", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        if auth_token:
            # Unredirected: urllib would otherwise copy the token onto a redirect to another host.
            request.add_unredirected_header("Authorization", f"Device {auth_token}")
        return request

    def _open(self, request: urllib.request.Request) -> Any:
        opener = self._direct_opener if is_loopback_url(request.full_url) else self._opener
        try:
            return opener.open(request, timeout=self.timeout_s)
        except urllib.error.HTTPError as error:
            return error  # a response with a non-2xx status; its headers and body are readable
        except NETWORK_ERRORS as exc:
            raise TransportError(f"{request.get_method()} {request.full_url}: {exc}") from exc
