"""Check-in tickets: the ETag of a check-in answer proves, on its own, that the answer is still current.

Most check-ins change nothing: the device sends the ETag of its last answer and should get ``304``. Reading
the device row for that was most of a check-in's cost, so the ETag carries what the row would have told:

    "<answer etag>.<project id>.<device pk>.<issued at>.<mac>"

``mac`` is an HMAC (a server secret) over those fields, the device's token hash and ``request_key``: the
project's plan generation and the request's fingerprint, models and installed report. A later check-in
whose token, generation and request give the same MAC, within ``DEVICE_CHECKIN_TICKET_TTL_S``, is answered
``304`` without the database. Anything that could change an answer without changing the request
(rules, versions, compatibility, device types, intervals) starts a new plan generation, which every ticket
of the project fails against (``devices.delivery.cache.invalidate``, called for every such write by ``devices.signals``); a token that stopped working
(revoked, or replaced by enrolling again) is listed per project (``VoidedToken``) and refused.

A ticket is not a credential: the token must come with it, and a ticket answers nothing but ``304``.

Pure functions; the caller supplies the secret, the generation and the clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from devices.core.signing import canonical_json

_MAC_HEX = 32  # 128 bits


@dataclass(frozen=True)
class Ticket:
    answer: str  # the answer ETag's 24 hex digits
    project_id: int
    device_pk: int
    issued_at: int
    mac: str

    @property
    def etag(self) -> str:
        return f'"{self.answer}.{self.project_id}.{self.device_pk}.{self.issued_at}.{self.mac}"'


def answer_part(tag: str) -> str:
    """The answer ETag inside an If-None-Match candidate (ticketed or not): its hex digits before any dot."""
    return tag.strip().removeprefix("W/").strip('"').split(".", 1)[0]


def request_key(*, generation: str, fingerprint: str, models: list[str], installed: dict[str, Any]) -> bytes:
    """What, besides the device and the time, a ticket's answer is a function of."""
    return hashlib.sha256(canonical_json([generation, fingerprint, models, installed])).digest()


def _mac(
    secret: bytes, answer: str, project_id: int, device_pk: int, issued_at: int, token_hash: str, key: bytes
) -> str:
    message = f"{answer}.{project_id}.{device_pk}.{issued_at}.{token_hash}.".encode() + key
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:_MAC_HEX]


def issue(secret: bytes, *, answer: str, project_id: int, device_pk: int, token_hash: str, key: bytes, now: int) -> str:
    """The ETag header value (quoted) for an answer whose ETag is ``answer`` (quoted or not)."""
    answer = answer.strip('"')
    mac = _mac(secret, answer, project_id, device_pk, now, token_hash, key)
    return f'"{answer}.{project_id}.{device_pk}.{now}.{mac}"'


_TICKET_RE = re.compile(r"([0-9a-f]{24})\.([0-9]{1,18})\.([0-9]{1,18})\.([0-9]{1,12})\.([0-9a-f]{%d})" % _MAC_HEX)


def parse(if_none_match: str) -> list[Ticket]:
    """The well-formed tickets among the If-None-Match candidates (anything else is ignored). Strictly ASCII
    digits and hex: the header is the client's, and ``int`` or ``compare_digest`` must never see anything else."""
    tickets = []
    for tag in if_none_match.split(",")[:8]:
        match = _TICKET_RE.fullmatch(tag.strip().removeprefix("W/").strip('"'))
        if match:
            answer, project_id, device_pk, issued_at, mac = match.groups()
            tickets.append(Ticket(answer, int(project_id), int(device_pk), int(issued_at), mac))
    return tickets


def is_valid(secret: bytes, ticket: Ticket, *, token_hash: str, key: bytes, now: int, ttl_s: int) -> bool:
    """Whether ``ticket`` was issued to this token for this request key, at most ``ttl_s`` seconds ago."""
    if not 0 <= now - ticket.issued_at <= ttl_s:
        return False
    expected = _mac(secret, ticket.answer, ticket.project_id, ticket.device_pk, ticket.issued_at, token_hash, key)
    return hmac.compare_digest(expected, ticket.mac)
