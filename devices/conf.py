"""Delivery settings: a Django setting of the same name wins, else the environment, else the default.

They live here rather than in console/settings.py so the delivery code can be deployed and tuned on its own;
each is read when used, so tests can override them with pytest-django's ``settings`` fixture.
"""

from __future__ import annotations

import os

from django.conf import settings


def _setting(name: str, default: str) -> str:
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name, default)
    return str(value)


def accel_redirect_prefix() -> str:
    """URL prefix of nginx's ``internal`` location for stored files, e.g. ``/protected-media/``; "" = Django sends."""
    return _setting("DEVICE_DOWNLOAD_ACCEL_REDIRECT", "")


def download_token_ttl_s() -> int:
    return int(_setting("DEVICE_DOWNLOAD_TOKEN_TTL_S", "600"))


def plan_cache_ttl_s() -> float:
    """Longest a web process trusts its cached delivery plan even when the generation did not change."""
    return float(_setting("DEVICE_PLAN_CACHE_TTL_S", "30"))


def generation_cache_s() -> float:
    """How long a web process trusts the plan generation it read when it checks a check-in ticket."""
    return float(_setting("DEVICE_GENERATION_CACHE_S", "1"))


def checkin_ticket_ttl_s() -> int:
    """How long a check-in ticket (the ETag of an answer) answers 304 without reading the device row."""
    return int(_setting("DEVICE_CHECKIN_TICKET_TTL_S", "3600"))


def last_seen_resolution_s() -> float:
    """How often at most a web process writes one device's last-seen time."""
    return float(_setting("DEVICE_LAST_SEEN_RESOLUTION_S", "60"))


def last_seen_flush_s() -> float:
    """How often a web process writes the buffered last-seen times (0: at once)."""
    return float(_setting("DEVICE_LAST_SEEN_FLUSH_S", "5"))


def key_encryption_secret() -> str:
    """What project signing keys are encrypted with: DEVICE_KEY_ENCRYPTION_KEY, else SECRET_KEY."""
    return _setting("DEVICE_KEY_ENCRYPTION_KEY", "") or settings.SECRET_KEY
