"""How devices authenticate (``Authorization: Device <token>``) and how fast they may call."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any, NoReturn

from django.contrib.auth.models import AnonymousUser
from django.core.cache import caches
from django.db import connection
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from console.db import bound_cursor
from devices.fleet import keys
from devices.models import Device, DeviceType, FleetSettings


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device as its requests see it: what check-in, events and downloads read of its row, its device
    type's slug and its project's fleet settings, from one indexed query (``device_for_token``). Anything
    else (stored configuration, runtime details, the signing key) is read where it is needed."""

    pk: int
    project_id: int
    device_id: str
    token_hash: str
    device_type_id: int
    device_type_slug: str
    region: str
    app_version: str
    attributes: dict[str, Any]
    fingerprint: str
    own_checkin_interval_s: int | None  # the device's own, overriding the project's
    delivery_digest: str
    last_seen_at: datetime | None
    revoked_at: datetime | None
    fleet_id: int
    plan_generation: str
    project_checkin_interval_s: int

    @property
    def checkin_interval_s(self) -> int:
        return self.own_checkin_interval_s or self.project_checkin_interval_s

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


# The record's columns: (record field, SQL); the lookup selects them in this order.
_COLUMNS = [
    ("pk", 'd."id"'),
    ("project_id", 'd."project_id"'),
    ("device_id", 'd."device_id"'),
    ("device_type_id", 'd."device_type_id"'),
    ("device_type_slug", '(SELECT t."slug" FROM "{type}" t WHERE t."id" = d."device_type_id")'),
    ("region", 'd."region"'),
    ("app_version", 'd."app_version"'),
    ("attributes", 'd."attributes"'),
    ("fingerprint", 'd."fingerprint"'),
    ("own_checkin_interval_s", 'd."checkin_interval_s"'),
    ("delivery_digest", 'd."delivery_digest"'),
    ("last_seen_at", 'd."last_seen_at"'),
    ("revoked_at", 'd."revoked_at"'),
    ("fleet_id", 'f."id"'),
    ("plan_generation", 'f."plan_generation"'),
    ("project_checkin_interval_s", 'f."checkin_interval_s"'),
]


@functools.cache
def _lookup_sql() -> str:
    device, device_type, fleet = Device._meta.db_table, DeviceType._meta.db_table, FleetSettings._meta.db_table
    columns = ", ".join(sql.format(type=device_type) for _, sql in _COLUMNS)
    return (
        f'SELECT {columns} FROM "{device}" d JOIN "{fleet}" f ON f."project_id" = d."project_id" '
        f'WHERE d."token_hash" = %s'
    )


def device_for_token(raw: str) -> DeviceRecord | None:
    """The device holding this token, in one indexed query.

    Plain SQL because this runs on every device request: the ORM spent several times longer compiling the
    query and building the rows than the database spent answering.
    """
    token_hash = keys.hash_token(raw)
    row = _fetch_one(_lookup_sql(), [token_hash])
    if row is None:
        return None
    values = dict(zip((name for name, _ in _COLUMNS), row, strict=True), token_hash=token_hash)
    # JSONField.from_db_value looks at the expression only to spot a key transform; a plain column has none, which
    # django-stubs (expecting an Expression) cannot say.
    values["attributes"] = _ATTRIBUTES.from_db_value(values["attributes"], None, connection)  # type: ignore[arg-type]
    values["last_seen_at"], values["revoked_at"] = _aware(values["last_seen_at"]), _aware(values["revoked_at"])
    return DeviceRecord(**values)


def _fetch_one(sql: str, params: list) -> tuple | None:
    """One row, through a server-binding cursor: the server would otherwise parse and plan this query on every
    check-in, which was most of its cost (``console.db.bound_cursor``)."""
    with bound_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


_ATTRIBUTES = Device._meta.get_field("attributes")


def _aware(value) -> datetime | None:
    """A timestamp column as the ORM gives it: raw SQL on SQLite returns naive text."""
    if value is None or isinstance(value, datetime) and timezone.is_aware(value):
        return value
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return timezone.make_aware(value, dt_timezone.utc) if timezone.is_naive(value) else value


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Device <token>``; see ``device_for_token``."""

    keyword = "Device"

    @classmethod
    def raw_token(cls, request) -> str | None:
        """The token of a ``Device`` Authorization header (None: no such header; malformed: 401)."""
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != cls.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Device <device token>'.")
        return header[1].decode(errors="replace")

    def authenticate(self, request):
        raw = self.raw_token(request)
        if raw is None:
            return None
        device = device_for_token(raw)
        if device is None or device.revoked_at is not None:
            self.refuse(device)
        return AnonymousUser(), device

    @staticmethod
    def refuse(device: DeviceRecord | None) -> NoReturn:
        """The 401 for a token that found no device, or a revoked one."""
        if device is None:
            raise exceptions.AuthenticationFailed("Unknown device token; enroll the device again.")
        raise exceptions.AuthenticationFailed("This device was revoked by its project; its token no longer works.")

    def authenticate_header(self, request) -> str:
        return self.keyword


@dataclass(frozen=True)
class TicketHolder:
    """The device a valid check-in ticket names (devices.core.tickets), known without reading its row."""

    pk: int
    project_id: int


class IsEnrolledDevice(permissions.BasePermission):
    message = "Send the device token: Authorization: Device <device token>."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, DeviceRecord)


class DeviceRateThrottle(throttling.SimpleRateThrottle):
    """Per device, not per address: a whole fleet behind one NAT must not share one budget.

    Counted per web process (the ``local`` cache), unlike every other throttle: it keeps an enrolled device
    that calls too often from loading the server, and a shared count would add a cache round trip to every
    check-in, the ticket path included, which otherwise touches no store at all (a database-cache write per
    check-in on the default set-up). With N web processes a device gets up to N times the rate before it is
    slowed; guessing secrets (enrollment keys, passwords) is throttled on the shared cache.
    """

    scope = "device"
    cache = caches["local"]

    def get_cache_key(self, request, view):
        ident = request.auth.pk if isinstance(request.auth, DeviceRecord | TicketHolder) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class EnrollRateThrottle(throttling.SimpleRateThrottle):
    """Per address: guessing enrollment keys stays slow."""

    scope = "enroll"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes the device token."""

    target_class = "devices.delivery.auth.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Device <device token>`, as returned by enrollment",
        }
