"""Daily rollups of device events per version, device type and region, counted as the events arrive.

``record_events`` calls ``count_events`` in the same transaction that stores the events, after dropping the
ids already seen, so a rollup row always equals what its events say and a resent batch is never counted
twice. The device's current type and region are used. Dashboards read these rows only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from devices.models import DailyRollup, Device, DeviceEvent

FUNNEL_DAYS = 14  # what the fleet and delivery pages chart

# Keyed by the stored value: a TextChoices member is the str it stands for, and events carry that str.
COUNTED_TYPES: dict[str, str] = {
    DeviceEvent.Type.DOWNLOAD_STARTED: "download_started",
    DeviceEvent.Type.DOWNLOAD_COMPLETED: "download_completed",
    DeviceEvent.Type.DOWNLOAD_FAILED: "download_failed",
    DeviceEvent.Type.INSTALL_SUCCEEDED: "install_succeeded",
    DeviceEvent.Type.INSTALL_FAILED: "install_failed",
    DeviceEvent.Type.ROLLBACK: "rollback",
}
FUNNEL = [
    "download_started",
    "download_completed",
    "download_failed",
    "install_succeeded",
    "install_failed",
    "rollback",
]


def _increments(events: Iterable[DeviceEvent]) -> dict[tuple, dict[str, float]]:
    groups: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event in events:
        if event.version_id is None or event.model_id is None:
            continue  # not about a version of this project: kept in the history, counted nowhere
        counts = groups[(event.at.date(), event.model_id, event.version_id)]
        if event.type in COUNTED_TYPES:
            counts[COUNTED_TYPES[event.type]] += 1
        elif event.type == DeviceEvent.Type.INFERENCE_STATS:
            count = event.stats.get("count", 0)
            counts["inference_count"] += count
            if "latency_ms_p50" in event.stats and count:
                counts["latency_count"] += count
                counts["latency_p50_weighted"] += event.stats["latency_ms_p50"] * count
                counts["latency_p90_weighted"] += (
                    event.stats.get("latency_ms_p90", event.stats["latency_ms_p50"]) * count
                )
            if "accuracy" in event.stats and count:
                counts["accuracy_count"] += count
                counts["accuracy_weighted"] += event.stats["accuracy"] * count
    return groups


def count_events(device: Device, events: Iterable[DeviceEvent]) -> None:
    """Add ``events`` (new ones only) to their rollup rows; call inside the transaction that stores them."""
    # Sorted, so concurrent batches lock rollup rows in the same order.
    for (day, model_id, version_id), counts in sorted(_increments(events).items()):
        key = {"day": day, "version_id": version_id, "device_type_id": device.device_type_id, "region": device.region}
        updates: dict[str, Any] = {name: F(name) + _typed(name, value) for name, value in counts.items()}
        if DailyRollup.objects.filter(**key).update(**updates):
            continue
        try:
            with transaction.atomic():
                DailyRollup.objects.create(
                    project_id=device.project_id,
                    model_id=model_id,
                    **key,
                    **{name: _typed(name, value) for name, value in counts.items()},
                )
        except IntegrityError:  # a concurrent batch created the row first
            DailyRollup.objects.filter(**key).update(**updates)


def _typed(name: str, value: float) -> float | int:
    return value if name.endswith("_weighted") else int(value)


def funnel_by_version(rollups) -> list[dict[str, Any]]:
    """Rollup rows summed per version: the download/install funnel a chart draws."""
    rows = (
        rollups.values("model__name", "version__number")
        .annotate(**{name: Sum(name) for name in FUNNEL}, inference_count=Sum("inference_count"))
        .order_by("model__name", "version__number")
    )
    return [dict(row, label=f"{row['model__name']} v{row['version__number']}") for row in rows]


def recent_rollups(**scope):
    """The rollups of the last ``FUNNEL_DAYS`` days, today included."""
    return DailyRollup.objects.filter(day__gte=timezone.now().date() - timedelta(days=FUNNEL_DAYS - 1), **scope)
