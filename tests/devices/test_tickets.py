"""devices.tickets: what a check-in ticket proves, and that nothing else passes for one."""

from __future__ import annotations

import pytest

from devices.core import tickets

SECRET = b"s" * 32
ANSWER = "0123456789abcdef01234567"
TOKEN = "t" * 64
NON_ASCII = "\u00e9"  # what a latin-1 header can carry
KEY = tickets.request_key(generation="g1", fingerprint="f" * 64, models=["m"], installed={})


def issued(now: int = 1_000_000) -> str:
    return tickets.issue(SECRET, answer=f'"{ANSWER}"', project_id=3, device_pk=42, token_hash=TOKEN, key=KEY, now=now)


def valid(
    etag: str, *, secret: bytes = SECRET, token: str = TOKEN, key: bytes = KEY, now: int = 1_000_010, ttl_s: int = 3600
) -> bool:
    [ticket] = tickets.parse(etag)
    return tickets.is_valid(secret, ticket, token_hash=token, key=key, now=now, ttl_s=ttl_s)


def test_issue__names_the_answer_project_and_device_and_parses_back():
    etag = issued()

    [ticket] = tickets.parse(etag)

    assert (ticket.answer, ticket.project_id, ticket.device_pk, ticket.issued_at) == (ANSWER, 3, 42, 1_000_000)
    assert ticket.etag == etag
    assert tickets.answer_part(etag) == tickets.answer_part(f'W/"{ANSWER}"') == ANSWER


def test_is_valid__for_the_same_secret_token_and_request_within_the_ttl():
    assert valid(issued())


@pytest.mark.parametrize(
    "changed",
    [
        {"secret": b"x" * 32},
        {"token": "u" * 64},
        {"key": tickets.request_key(generation="g2", fingerprint="f" * 64, models=["m"], installed={})},
        {"key": tickets.request_key(generation="g1", fingerprint="e" * 64, models=["m"], installed={})},
        {"key": tickets.request_key(generation="g1", fingerprint="f" * 64, models=["m", "n"], installed={})},
        {
            "key": tickets.request_key(
                generation="g1",
                fingerprint="f" * 64,
                models=["m"],
                installed={"m": {"version_id": 1, "sha256": "a" * 64, "state": "failed"}},
            )
        },
        {"now": 1_000_000 + 3601},  # expired
        {"now": 999_999},  # issued in the future
    ],
)
def test_is_valid__refuses_any_other_secret_token_request_or_time(changed):
    assert not valid(issued(), **changed)


@pytest.mark.parametrize("field", [0, 1, 2, 3, 4])
def test_is_valid__refuses_a_ticket_with_any_field_changed(field):
    parts = issued().strip('"').split(".")
    parts[field] = parts[field][:-1] + ("1" if parts[field][-1] != "1" else "2")

    assert not valid('"' + ".".join(parts) + '"')


@pytest.mark.parametrize(
    "header",
    [
        "",
        "*",
        f'"{ANSWER}"',
        '"a.b.c.d.e"',
        f'"{ANSWER}.3.42.1000000"',
        f'"{ANSWER}.3.42.1000000.abc"',
        f'"{ANSWER}.-3.42.1000000.{"0" * 32}"',
        f'"{ANSWER}.3.{"9" * 40}.1000000.{"0" * 32}"',
        f'"short.3.42.1000000.{"0" * 32}"',
        "\x00" * 100,
        f'"{ANSWER}.\u00b2.42.1000000.{"0" * 32}"',
        f'"{ANSWER}.3.42.1000000.{NON_ASCII * 32}"',
        f'"{ANSWER.upper()}.3.42.1000000.{"0" * 32}"',
    ],
)
def test_parse__ignores_anything_that_is_not_a_well_formed_ticket(header):
    assert tickets.parse(header) == []


def test_parse__finds_the_ticket_among_several_candidates():
    assert [t.device_pk for t in tickets.parse(f'"{ANSWER}", {issued()}, *')] == [42]
