"""The filters every dashboard takes from its URL: time range, device type, region, app version."""

from __future__ import annotations

import functools
from datetime import date, timedelta
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import serializers

from console.db import column
from devices.models import DeliveryRollup, DeliveryTypeRollup, Device, DeviceType

RANGES = (1, 7, 14, 30, 90)  # days, today included
DEFAULT_DAYS = 14


class DashboardFilterSerializer(serializers.Serializer):
    days = serializers.ChoiceField(choices=RANGES, default=DEFAULT_DAYS, help_text="the last N days, today included")
    device_type = serializers.SlugField(max_length=63, required=False, help_text="a device type's slug")
    region = serializers.RegexField(r"^[A-Z]{2}$", required=False, help_text="ISO 3166 alpha-2, upper case")
    app_version = serializers.CharField(max_length=64, required=False)

    def to_internal_value(self, data):
        # Empty fields of the filter form mean "any".
        data = {key: value for key, value in data.items() if value not in ("", None)}
        return super().to_internal_value(data)


def first_day(filters: dict[str, Any], today: date | None = None) -> date:
    return (today or timezone.now().date()) - timedelta(days=int(filters.get("days", DEFAULT_DAYS)) - 1)


def rollups_in(filters: dict[str, Any], **scope: Any) -> QuerySet:
    """Delivery rollup rows of ``scope`` (``project=`` or ``model=``) inside the filters: of DeliveryTypeRollup
    (hundreds of times fewer rows) unless a filter needs the region or app version only DeliveryRollup keeps."""
    rollups: QuerySet
    if "region" in filters or "app_version" in filters:
        fine = DeliveryRollup.objects.filter(day__gte=first_day(filters), **scope)
        if "region" in filters:
            fine = fine.filter(region=filters["region"])
        if "app_version" in filters:
            fine = fine.filter(app_version=filters["app_version"])
        rollups = fine
    else:
        rollups = DeliveryTypeRollup.objects.filter(day__gte=first_day(filters), **scope)
    if "device_type" in filters:
        rollups = rollups.filter(device_type__slug=filters["device_type"])
    return rollups


def devices_in(devices: QuerySet, filters: dict[str, Any], prefix: str = "") -> QuerySet:
    """Devices (or rows reaching a device through ``prefix``, e.g. ``device__``) inside the filters."""
    if "device_type" in filters:
        devices = devices.filter(**{f"{prefix}device_type__slug": filters["device_type"]})
    if "region" in filters:
        devices = devices.filter(**{f"{prefix}region": filters["region"]})
    if "app_version" in filters:
        devices = devices.filter(**{f"{prefix}app_version": filters["app_version"]})
    return devices


@functools.cache
def _choices_sql() -> str:
    """Each column's distinct values by a walk of its (project, column) index: the smallest value, then the
    smallest above it, and so on (a "loose index scan", which neither PostgreSQL nor SQLite plans by itself).
    A few dozen index probes instead of reading every device of the fleet."""
    q = connection.ops.quote_name
    device, device_type = q(Device._meta.db_table), q(DeviceType._meta.db_table)
    project = q(column(Device, "project"))

    def walk(name: str, field: str) -> str:
        value = q(column(Device, field))
        return (
            f"{name}(v) AS (SELECT MIN({value}) FROM {device} WHERE {project} = %s "
            f"UNION ALL SELECT (SELECT MIN({value}) FROM {device} WHERE {project} = %s AND {value} > {name}.v) "
            f"FROM {name} WHERE {name}.v IS NOT NULL)"
        )

    return (
        f"WITH RECURSIVE {walk('types', 'device_type')}, {walk('regions', 'region')}, {walk('apps', 'app_version')} "
        f"SELECT 'device_types', t.slug FROM types JOIN {device_type} t ON t.id = types.v "
        "UNION ALL SELECT 'regions', v FROM regions WHERE v IS NOT NULL "
        "UNION ALL SELECT 'app_versions', v FROM apps WHERE v IS NOT NULL"
    )


def choices(project) -> dict[str, list[str]]:
    """The filter form's options: the device types, regions and app versions of the project's devices, revoked
    ones included."""
    found: dict[str, set[str]] = {"device_types": set(), "regions": set(), "app_versions": set()}
    with connection.cursor() as cursor:
        cursor.execute(_choices_sql(), [project.pk] * 6)
        for name, value in cursor.fetchall():
            found[name].add(value)
    found["regions"].discard("")
    return {name: sorted(values) for name, values in found.items()}
