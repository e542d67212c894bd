"""Device events: the history the server writes and the batches devices report, counted into rollups."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db import connection, models, transaction
from django.db.models import Field, FilteredRelation, Q
from django.utils import timezone

from console.db import bound_cursor, column
from console.errors import Refused
from console.models import Model
from devices.models import Device, DeviceEvent, DeviceModelState
from devices.telemetry import delivery_counts, experiment_rollups, rollups

# A device event must be dated within this window around the server's clock, or it is neither stored nor
# counted: a device whose clock was reset (1970) or runs far ahead would put its figures into days they say
# nothing about. A month back lets a device that was offline that long still report what happened; up to an
# hour ahead is a clock running a little fast, and such an event is dated now.
EVENT_MAX_AGE = timedelta(days=30)
EVENT_MAX_AHEAD = timedelta(hours=1)


class BatchOutcome(NamedTuple):
    accepted: int  # stored (and counted, when about a version of this project)
    duplicates: int  # already stored: a resent batch
    out_of_window: int  # dated too far from the server's clock: dropped (``EVENT_MAX_AGE``, ``EVENT_MAX_AHEAD``)


def server_event(device, event_type: str, now: datetime, reason: str = "", **fields: Any) -> DeviceEvent:
    """A history entry recorded by the server (unsaved), for a Device or a DeviceRecord."""
    return DeviceEvent(
        project_id=device.project_id,
        device_id=device.pk,
        event_id=f"server:{uuid.uuid4().hex}",
        type=event_type,
        at=now,
        received_at=now,
        reason=reason[:2000],
        **fields,
    )


def in_window(at: datetime, now: datetime) -> bool:
    """Whether an event dated ``at`` may be stored and counted when the server's clock says ``now``."""
    return now - EVENT_MAX_AGE <= at <= now + EVENT_MAX_AHEAD


# What shows a device was served a version: it was told to run it, or it said it downloaded, installed or ran it.
SERVED_EVENTS = (
    DeviceEvent.Type.DOWNLOAD_COMPLETED,
    DeviceEvent.Type.INSTALL_SUCCEEDED,
    DeviceEvent.Type.INFERENCE_STATS,
)


def refuse_feedback_never_served(device, events: list[dict[str, Any]]) -> None:
    """Refuse the batch when a feedback event is about a version this device was never served.

    A label for a prediction the device could not have made would count for an arm it is not in.
    """
    asked = {event["version_id"] for event in events if event["type"] == DeviceEvent.Type.FEEDBACK}
    if not asked:
        return
    served = {event["version_id"] for event in events if event["type"] in SERVED_EVENTS}
    for desired, installed in DeviceModelState.objects.filter(device_id=device.pk).values_list(
        "desired_version_id", "installed_version_id"
    ):
        served.update((desired, installed))
    served.update(
        DeviceEvent.objects.filter(
            device_id=device.pk, version_id__in=asked - served, type__in=SERVED_EVENTS
        ).values_list("version_id", flat=True)
    )
    never = sorted(asked - served)
    if never:
        first = next(e for e in events if e["type"] == DeviceEvent.Type.FEEDBACK and e["version_id"] in never)
        raise Refused(
            f"feedback event {first['id']} is about version {first['version_id']}, which this device was never "
            f"served (versions never served: {', '.join(map(str, never))}); report feedback only for the version "
            "that made the prediction. Nothing in this batch was stored."
        )


def record_events(*, device, events: list[dict[str, Any]], now: datetime | None = None) -> BatchOutcome:
    """Store a batch of device events (of a Device or a DeviceRecord) and count them into the daily rollups.

    An event id already stored for this device (a batch resent because its answer was lost) is a duplicate
    and is counted nowhere; so is an event dated outside the window around ``now`` (``in_window``), which is
    not stored either. Batches of one device are serialized by a lock on its row, so two copies of the same
    batch arriving together cannot both be counted.
    """
    now = now or timezone.now()
    dated = [event for event in events if in_window(event["at"], now)]
    first: dict[str, dict[str, Any]] = {}
    for event in dated:
        first.setdefault(event["id"], event)  # an id sent twice in one batch counts once
    models, versions = _catalog(device.project_id, first.values())
    rows = []
    for event in first.values():
        model_id = models.get(event["model"])
        version_id = event["version_id"] if (model_id, event["version_id"]) in versions else None
        rows.append(
            DeviceEvent(
                project_id=device.project_id,
                device_id=device.pk,
                event_id=event["id"],
                type=event["type"],
                model_id=model_id,
                version_id=version_id,
                reported_version_id=event["version_id"],
                at=min(event["at"], now),
                received_at=now,
                reason=event["reason"],
                stats=event["stats"],
            )
        )
    with transaction.atomic():
        Device.objects.select_for_update().filter(pk=device.pk).values_list("pk", flat=True).first()
        stored = _store_new(rows)
        refuse_feedback_never_served(device, [first[row.event_id] for row in stored])
        rollups.count_events(device, stored)
        experiment_rollups.count_events(device, stored)
        delivery_counts.count_delivery(device, stored)
    return BatchOutcome(len(stored), len(dated) - len(stored), len(events) - len(dated))


def _catalog(project_id: int, events: Iterable[dict[str, Any]]) -> tuple[dict[str, int], set[tuple[int, int]]]:
    """The project's models the events name (name -> id) and, of the versions they report, those of these
    models ((model id, version id)), in one query. A version is kept only with the model that owns it: a
    version of another project, or of a model the event does not name, is kept as reported and counted nowhere."""
    names, version_ids = set(), set()
    for event in events:
        names.add(event["model"])
        if event["version_id"] is not None:
            version_ids.add(event["version_id"])
    if not names:
        return {}, set()
    found = (
        Model.objects.filter(project_id=project_id, name__in=names)
        .annotate(reported=FilteredRelation("versions", condition=Q(versions__pk__in=version_ids)))
        .values_list("name", "pk", "reported__pk")
    )
    models, versions = {}, set()
    for name, model_id, version_id in found:
        models[name] = model_id
        if version_id is not None:
            versions.add((model_id, version_id))
    return models, versions


# What a device's event stores besides the columns every row of a batch shares (project, device, received_at).
_PER_EVENT = [
    ("event_id", "text"),
    ("type", "text"),
    ("model", "bigint"),
    ("version", "bigint"),
    ("reported_version_id", "bigint"),
    ("at", "timestamptz"),
    ("reason", "text"),
    ("stats", "jsonb"),
]
_SHARED = [("project", "bigint"), ("device", "bigint"), ("received_at", "timestamptz")]


_EVENT_FIELDS: dict[str, Field] = {field.name: field for field in DeviceEvent._meta.concrete_fields}


@functools.cache
def _insert_sql(vendor: str, rows: int) -> str:
    """PostgreSQL: one text whatever the number of rows (a prepared statement, each column an array);
    elsewhere (SQLite), a row of placeholders per event."""
    q = connection.ops.quote_name
    columns = {name: q(column(DeviceEvent, name)) for name, _ in _SHARED + _PER_EVENT}
    if vendor == "postgresql":
        names = [f"e{index}" for index in range(len(_PER_EVENT))]
        arrays = ", ".join(f"%s::{'text' if kind == 'jsonb' else kind}[]" for _, kind in _PER_EVENT)
        picked = ", ".join(
            f"{alias}::jsonb" if kind == "jsonb" else alias for alias, (_, kind) in zip(names, _PER_EVENT, strict=True)
        )
        source = (
            f"SELECT {', '.join(f'%s::{kind}' for _, kind in _SHARED)}, {picked} "
            f"FROM unnest({arrays}) AS e({', '.join(names)})"
        )
    else:
        source = "VALUES " + ", ".join(["(" + ", ".join(["%s"] * (len(_SHARED) + len(_PER_EVENT))) + ")"] * rows)
    return (
        f"INSERT INTO {q(DeviceEvent._meta.db_table)} ({', '.join(columns.values())}) {source} "
        f"ON CONFLICT ({columns['device']}, {columns['event_id']}) DO NOTHING "
        f"RETURNING {q(column(DeviceEvent, 'pk'))}, {columns['event_id']}"
    )


def _store_new(rows: list[DeviceEvent]) -> list[DeviceEvent]:
    """Insert ``rows`` but those whose event id this device already stored; returns the inserted ones (pk set),
    in the batch's order.

    One statement (``ON CONFLICT DO NOTHING RETURNING``) instead of reading the stored ids first and then
    ``bulk_create``, whose compiling, placeholder parsing and quoting of 1,100 values cost more than the
    database's work on them. On PostgreSQL the columns go as arrays to one prepared statement.
    """
    if not rows:
        return []
    fields = [_EVENT_FIELDS[name] for name, _ in _SHARED + _PER_EVENT]
    shared, per_event = fields[: len(_SHARED)], fields[len(_SHARED) :]
    first = rows[0]
    if connection.vendor == "postgresql":
        values: list[Any] = [getattr(first, field.attname) for field in shared]
        for field in per_event:
            column = [getattr(row, field.attname) for row in rows]
            values.append([json.dumps(value) for value in column] if isinstance(field, models.JSONField) else column)
    else:
        values = [field.get_db_prep_save(getattr(row, field.attname), connection) for row in rows for field in fields]
    with bound_cursor() as cursor:
        cursor.execute(_insert_sql(connection.vendor, len(rows)), values)
        inserted = dict((event_id, pk) for pk, event_id in cursor.fetchall())
    stored = []
    for row in rows:
        if row.event_id in inserted:
            row.pk = inserted[row.event_id]
            row._state.adding, row._state.db = False, connection.alias
            stored.append(row)
    return stored
