"""How devices authenticate (``Authorization: Device <token>``) and how fast they may call."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timezone as dt_timezone
from typing import NoReturn

import psycopg
from django.contrib.auth.models import AnonymousUser
from django.db import connection, models
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from devices.fleet import keys
from devices.models import Device, DeviceType, FleetSettings

# What device requests read; the rest (stored config, runtime details...) loads on access, which only a
# configuration change does (services.apply_config reloads the row).
_DEVICE_FIELDS = [field for field in Device._meta.concrete_fields if field.name in {
    "id", "project", "device_id", "device_type", "region", "app_version", "attributes", "fingerprint",
    "checkin_interval_s", "delivery_digest", "last_seen_at", "revoked_at"}]


@functools.cache
def _lookup_sql() -> str:
    device, device_type, fleet = Device._meta.db_table, DeviceType._meta.db_table, FleetSettings._meta.db_table
    columns = ", ".join(f'd."{field.column}"' for field in _DEVICE_FIELDS)
    return (f'SELECT {columns}, (SELECT t."slug" FROM "{device_type}" t WHERE t."id" = d."device_type_id"), '
            f'f."id", f."plan_generation", f."checkin_interval_s" '
            f'FROM "{device}" d JOIN "{fleet}" f ON f."project_id" = d."project_id" WHERE d."token_hash" = %s')


def device_for_token(raw: str) -> Device | None:
    """The device holding this token, in one indexed query, with what every check-in needs attached.

    Plain SQL because this runs on every device request: the ORM spent several times longer compiling the
    query and building the rows than the database spent answering. ``device.device_type`` holds only the
    slug (its other fields load on access); ``device.fleet`` is the project's FleetSettings with its plan
    generation and interval (the signing key loads on access, i.e. only when a manifest must be signed).
    """
    token_hash = keys.hash_token(raw)
    row = _fetch_one(_lookup_sql(), [token_hash])
    if row is None:
        return None
    count = len(_DEVICE_FIELDS)
    values = [_from_db(field, value) for field, value in zip(_DEVICE_FIELDS, row[:count], strict=True)]
    device = Device.from_db(connection.alias, [field.attname for field in _DEVICE_FIELDS], values)
    type_slug, fleet_id, generation, interval = row[count:]
    device.device_type = _partial(DeviceType, id=device.device_type_id, slug=type_slug)
    device.fleet = _partial(FleetSettings, id=fleet_id, project_id=device.project_id, plan_generation=generation,
                            checkin_interval_s=interval)
    device.token_hash = token_hash  # the row was found by it (check-in tickets are bound to it)
    return device


def _fetch_one(sql: str, params: list) -> tuple | None:
    """One row. On PostgreSQL through a server-binding cursor, which psycopg turns into a prepared
    statement after a few calls on a connection (``prepare_threshold``, see DB_PREPARED_STATEMENTS in
    console/settings.py): Django's own cursors bind parameters on the client, so the server would parse and
    plan this query on every check-in, which was most of its cost. Wrapped as Django wraps its cursors, so
    query logging, execute wrappers and error translation still apply."""
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        raw = psycopg.Cursor(connection.connection)
        cursor = connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)
    else:
        cursor = connection.cursor()
    with cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _from_db(field, value):
    """What the ORM's converters would give: raw SQL skips them, and SQLite returns naive datetime text."""
    if hasattr(field, "from_db_value"):
        return field.from_db_value(value, None, connection)
    if isinstance(field, models.DateTimeField) and value is not None:
        value = field.to_python(value)
        return timezone.make_aware(value, dt_timezone.utc) if timezone.is_naive(value) else value
    return value


def _partial(model, **loaded):
    """An instance with only ``loaded`` fields; the others load from the database on first access."""
    names = [field.attname for field in model._meta.concrete_fields if field.attname in loaded]
    return model.from_db(connection.alias, names, [loaded[name] for name in names])


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
    def refuse(device: Device | None) -> NoReturn:
        """The 401 for a token that found no device, or a revoked one."""
        if device is None:
            raise exceptions.AuthenticationFailed("Unknown device token; enroll the device again.")
        raise exceptions.AuthenticationFailed("This device was revoked by its project; its token no longer works.")

    def authenticate_header(self, request) -> str:
        return self.keyword


@dataclass(frozen=True)
class TicketHolder:
    """The device a valid check-in ticket names (devices.tickets), known without reading its row."""

    pk: int
    project_id: int


class IsEnrolledDevice(permissions.BasePermission):
    message = "Send the device token: Authorization: Device <device token>."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Device)


class DeviceRateThrottle(throttling.SimpleRateThrottle):
    """Per device, not per address: a whole fleet behind one NAT must not share one budget."""

    scope = "device"

    def get_cache_key(self, request, view):
        ident = request.auth.pk if isinstance(request.auth, Device | TicketHolder) else self.get_ident(request)
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
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Device <device token>`, as returned by enrollment"}
