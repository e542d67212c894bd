"""``DeliveryRollup`` and ``DeliveryTypeRollup`` kept up to date as events are stored, and rebuilt from the stored events.

``count_delivery`` is called in the transaction that stores a batch of new events: device reports
(``events.record_events``) and the server's assignment changes (check-in), which are the offers. An install is
also counted in the bucket of its delay since the device was last offered that version. The device's current
type, region and app version are used, as ``rollups.count_events`` does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from console.db import bound_cursor
from devices.core.failure_reasons import delay_bucket, failure_reason
from devices.models import DELAY_COLUMNS, DeliveryCounts, DeliveryRollup, DeliveryTypeRollup, Device, DeviceEvent

T = DeviceEvent.Type
# Keyed by the stored value (a TextChoices member is the str it stands for), as rollups.COUNTED_TYPES is.
STEPS: dict[str, str] = {
    T.ASSIGNMENT_CHANGED: "offered",
    T.DOWNLOAD_STARTED: "download_started",
    T.DOWNLOAD_COMPLETED: "download_completed",
    T.DOWNLOAD_FAILED: "download_failed",
    T.INSTALL_SUCCEEDED: "install_succeeded",
    T.INSTALL_FAILED: "install_failed",
    T.ROLLBACK: "rollback",
}
FAILURES = (T.DOWNLOAD_FAILED, T.INSTALL_FAILED)


def _offers(device_pk: int, installs: list[DeviceEvent]) -> dict[int, list[datetime]]:
    """When the device was offered each installed version (all offers, oldest first)."""
    if not installs:
        return {}
    offers: dict[int, list[datetime]] = defaultdict(list)
    rows = DeviceEvent.objects.filter(
        device_id=device_pk, type=T.ASSIGNMENT_CHANGED, version_id__in={event.version_id for event in installs}
    ).values_list("version_id", "at")
    for version_id, at in sorted(rows, key=lambda row: row[1]):
        offers[version_id].append(at)
    return offers


def increments(events: Iterable[DeviceEvent], offers: dict[int, list[datetime]]) -> dict[tuple, dict[str, float]]:
    """Per (day, model id, version id): the columns to add. ``offers``: see ``_offers``."""
    groups: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event in events:
        if event.version_id is None or event.model_id is None:
            continue
        counts = groups[(event.at.date(), event.model_id, event.version_id)]
        step = STEPS.get(event.type)
        if step:
            counts[step] += 1
        if event.type in FAILURES:
            counts[f"failed_{failure_reason(event.reason)}"] += 1
        elif event.type == T.INSTALL_SUCCEEDED:
            before = [at for at in offers.get(event.version_id, ()) if at <= event.at]
            if before:
                counts[DELAY_COLUMNS[delay_bucket((event.at - before[-1]).total_seconds())]] += 1
        elif event.type == T.INFERENCE_STATS:
            count = event.stats.get("count", 0)
            counts["inference_count"] += count
            if "latency_ms_p50" in event.stats and count:
                counts["latency_count"] += count
                counts["latency_p50_weighted"] += event.stats["latency_ms_p50"] * count
            if "accuracy" in event.stats and count:
                counts["accuracy_count"] += count
                counts["accuracy_weighted"] += event.stats["accuracy"] * count
    return groups


def count_delivery(device, events: list[DeviceEvent]) -> None:
    """Add ``events`` (new ones only, of one Device or DeviceRecord) to their rows; call inside the transaction
    that stores them."""
    installs = [e for e in events if e.type == T.INSTALL_SUCCEEDED and e.version_id is not None]
    add(device, increments(events, _offers(device.pk, installs)))


COUNTS: list[str] = [str(f.column) for f in DeliveryCounts._meta.fields]
KEY = ["day", "version_id", "device_type_id", "region", "app_version"]
TYPE_KEY = ["day", "version_id", "device_type_id"]  # DeliveryTypeRollup: summed over regions and app versions


def add(device, groups: dict[tuple, dict[str, float]]) -> None:
    """Add each group's counts to its rows of both tables (DeliveryRollup, DeliveryTypeRollup), creating the rows
    missing, in one statement per table (an upsert that adds: ``INSERT ... ON CONFLICT DO UPDATE SET n = n +
    EXCLUDED.n``); rows in key order, so concurrent batches lock them in the same order."""
    if not groups:
        return
    ordered = sorted(groups.items())
    type_id, region, app = device.device_type_id, device.region, device.app_version
    rows = [
        [device.project_id, model_id, day, version_id, type_id, region, app, *_counts(c)]
        for (day, model_id, version_id), c in ordered
    ]
    _upsert(DeliveryRollup._meta.db_table, KEY, rows)
    # One device per batch: its (day, version) groups are distinct rows of the coarser table too.
    _upsert(DeliveryTypeRollup._meta.db_table, TYPE_KEY, [row[:5] + row[7:] for row in rows])


def _counts(counts: dict[str, float]) -> list[Any]:
    return [_typed(name, counts.get(name, 0)) for name in COUNTS]


def _upsert(table: str, key: list[str], rows: list[list[Any]]) -> None:
    q = connection.ops.quote_name
    columns = ["project_id", "model_id", *key, *COUNTS]
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {q(table)} AS r ({', '.join(map(q, columns))}) VALUES {', '.join([row] * len(rows))} "
        f"ON CONFLICT ({', '.join(map(q, key))}) DO UPDATE SET "
        + ", ".join(f"{q(c)} = r.{q(c)} + EXCLUDED.{q(c)}" for c in COUNTS)
    )
    with bound_cursor() as cursor:  # binds on the server: psycopg quoting every value cost more than the upsert
        cursor.execute(sql, [value for values in rows for value in values])


def sum_per_type(project_id: int) -> None:
    """Write a project's DeliveryTypeRollup rows as its DeliveryRollup rows summed, in SQL: what counting the
    events batch by batch leaves (tests/devices/test_delivery_counts.py); for filling an empty table fast."""
    q = connection.ops.quote_name
    key = ["project_id", "model_id", *TYPE_KEY]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {q(DeliveryTypeRollup._meta.db_table)} ({', '.join(map(q, [*key, *COUNTS]))}) "
            f"SELECT {', '.join(map(q, key))}, {', '.join(f'SUM({q(c)})' for c in COUNTS)} "
            f"FROM {q(DeliveryRollup._meta.db_table)} WHERE project_id = %s GROUP BY {', '.join(map(q, key))}",
            [project_id],
        )


def _typed(name: str, value: float) -> Any:
    return value if name.endswith("_weighted") else int(value)


def rebuild(project_ids: list[int] | None = None) -> int:
    """Delete the rollup rows and count every stored event again, device by device, in the order they happened.
    Returns how many devices were counted. Holds each device's row lock while counting it, as ingestion does."""
    rollups, per_type = DeliveryRollup.objects.all(), DeliveryTypeRollup.objects.all()
    devices = Device.objects.order_by("pk")
    if project_ids is not None:
        rollups, devices = rollups.filter(project_id__in=project_ids), devices.filter(project_id__in=project_ids)
        per_type = per_type.filter(project_id__in=project_ids)
    rollups.delete()
    per_type.delete()
    counted = 0
    for device in devices.iterator():
        with transaction.atomic():
            Device.objects.select_for_update().filter(pk=device.pk).values_list("pk", flat=True).first()
            events = list(device.events.filter(version__isnull=False).order_by("at", "pk"))
            offers: dict[int, list[datetime]] = defaultdict(list)
            for event in events:
                if event.type == T.ASSIGNMENT_CHANGED:
                    offers[event.version_id].append(event.at)  # type: ignore[index]
            add(device, increments(events, offers))
        counted += 1
    return counted


def bulk_rows(project_id: int, events_by_device: dict[Any, list[DeviceEvent]]) -> list[DeliveryRollup]:
    """The rows that counting these events one batch at a time would leave, computed at once (unsaved), for
    filling an empty table fast (bench/dashboards.py). Same counting (``increments``), summed across batches."""
    totals: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    models: dict[tuple, int] = {}
    for device, events in events_by_device.items():
        ordered = sorted(events, key=lambda event: event.at)
        offers: dict[int, list[datetime]] = defaultdict(list)
        for event in ordered:
            if event.type == T.ASSIGNMENT_CHANGED and event.version_id is not None:
                offers[event.version_id].append(event.at)
        for (day, model_id, version_id), counts in increments(ordered, offers).items():
            key = (day, version_id, device.device_type_id, device.region, device.app_version)
            models[key] = model_id
            for name, value in counts.items():
                totals[key][name] += value
    return [
        DeliveryRollup(
            project_id=project_id,
            model_id=models[key],
            day=key[0],
            version_id=key[1],
            device_type_id=key[2],
            region=key[3],
            app_version=key[4],
            **{name: _typed(name, value) for name, value in counts.items()},
        )
        for key, counts in totals.items()
    ]
