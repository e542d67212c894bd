"""Device events: the history the server writes and the batches devices report, counted into rollups."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db import transaction
from django.utils import timezone

from console.errors import Refused
from console.models import Model, ModelVersion
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
    with transaction.atomic():
        Device.objects.select_for_update().filter(pk=device.pk).values_list("pk", flat=True).first()
        ids = [event["id"] for event in dated]
        known = set(
            DeviceEvent.objects.filter(device_id=device.pk, event_id__in=ids).values_list("event_id", flat=True)
        )
        fresh: list[dict[str, Any]] = []
        for event in dated:
            if event["id"] not in known:
                known.add(event["id"])
                fresh.append(event)
        refuse_feedback_never_served(device, fresh)
        models = dict(
            Model.objects.filter(project_id=device.project_id, name__in={e["model"] for e in fresh}).values_list(
                "name", "id"
            )
        )
        versions = dict(
            ModelVersion.objects.filter(
                model__project_id=device.project_id,
                pk__in={e["version_id"] for e in fresh if e["version_id"]},
            ).values_list("pk", "model_id")
        )
        rows = []
        for event in fresh:
            model_id = models.get(event["model"])
            version_id = event["version_id"] if versions.get(event["version_id"]) == model_id else None
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
        DeviceEvent.objects.bulk_create(rows)
        rollups.count_events(device, rows)
        experiment_rollups.count_events(device, rows)
        delivery_counts.count_delivery(device, rows)
    return BatchOutcome(len(fresh), len(dated) - len(fresh), len(events) - len(dated))
