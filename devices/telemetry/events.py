"""Device events: the history the server writes and the batches devices report, counted into rollups."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from console.models import Model, ModelVersion
from devices.models import Device, DeviceEvent
from devices.telemetry import rollups


def server_event(device: Device, event_type: str, now: datetime, reason: str = "", **fields: Any) -> DeviceEvent:
    """A history entry recorded by the server (unsaved)."""
    return DeviceEvent(
        project_id=device.project_id, device=device, event_id=f"server:{uuid.uuid4().hex}", type=event_type,
        at=now, received_at=now, reason=reason[:2000], **fields,
    )


def record_events(*, device: Device, events: list[dict[str, Any]], now: datetime | None = None) -> tuple[int, int]:
    """Store a batch of device events and count them into the daily rollups; returns (accepted, duplicates).

    An event id already stored for this device (a batch resent because its answer was lost) is a duplicate
    and is counted nowhere. Batches of one device are serialized by a lock on its row, so two copies of the
    same batch arriving together cannot both be counted.
    """
    now = now or timezone.now()
    with transaction.atomic():
        Device.objects.select_for_update().filter(pk=device.pk).values_list("pk", flat=True).first()
        ids = [event["id"] for event in events]
        known = set(DeviceEvent.objects.filter(device=device, event_id__in=ids).values_list("event_id", flat=True))
        fresh: list[dict[str, Any]] = []
        for event in events:
            if event["id"] not in known:
                known.add(event["id"])
                fresh.append(event)
        models = dict(Model.objects.filter(project_id=device.project_id, name__in={e["model"] for e in fresh})
                      .values_list("name", "id"))
        versions = dict(ModelVersion.objects.filter(
            model__project_id=device.project_id, pk__in={e["version_id"] for e in fresh if e["version_id"]},
        ).values_list("pk", "model_id"))
        rows = []
        for event in fresh:
            model_id = models.get(event["model"])
            version_id = event["version_id"] if versions.get(event["version_id"]) == model_id else None
            rows.append(DeviceEvent(
                project_id=device.project_id, device=device, event_id=event["id"], type=event["type"],
                model_id=model_id, version_id=version_id, reported_version_id=event["version_id"],
                at=min(event["at"], now), received_at=now, reason=event["reason"], stats=event["stats"],
            ))
        DeviceEvent.objects.bulk_create(rows)
        rollups.count_events(device, rows)
    return len(fresh), len(events) - len(fresh)
