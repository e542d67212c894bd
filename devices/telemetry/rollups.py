"""Daily rollups of device events per version, device type and region, counted as the events arrive.

``record_events`` calls ``count_events`` in the same transaction that stores the events, after dropping the
ids already seen, so a rollup row always equals what its events say and a resent batch is never counted
twice. The device's current type and region are used. Dashboards read these rows only.

Besides counts, each row keeps sufficient statistics (``METRIC_FIELDS``: sums and sums of squares of report
latencies, labeled feedback and how much of it was right, inference errors) and a latency sketch
(``devices.telemetry.sketches``), from which means, rates, intervals and quantiles are computed without raw
events. ``devices.telemetry.experiment_rollups`` keeps the same per experiment arm (``record_events`` calls both).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from console.db import bound_cursor
from devices.models import DailyRollup, Device, DeviceEvent
from devices.telemetry import sketches

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


# The sufficient statistics every rollup row (DailyRollup, ExperimentRollup) keeps, besides its latency sketch.
METRIC_FIELDS = [
    *FUNNEL,
    "inference_count",
    "inference_errors",
    "latency_n",
    "latency_sum",
    "latency_sum_sq",
    "feedback_count",
    "feedback_correct",
]
# Every column ``event_increments`` adds to (the rollup models hold some or all of them).
COUNTED_FIELDS = {
    *METRIC_FIELDS,
    "latency_count",
    "latency_p50_weighted",
    "latency_p90_weighted",
    "accuracy_count",
    "accuracy_weighted",
}
_FLOAT_FIELDS = {"latency_sum", "latency_sum_sq", "latency_p50_weighted", "latency_p90_weighted", "accuracy_weighted"}


def latency_of(stats: dict[str, Any]) -> float | None:
    """The latency one inference_stats report contributes: its mean (or, from older agents, its median).

    One report is one observation: the unit the latency mean, its test and its sketch are made of.
    """
    if not stats.get("count"):
        return None
    value = stats.get("latency_ms_mean", stats.get("latency_ms_p50"))
    return float(value) if value is not None else None


def event_increments(event: DeviceEvent) -> tuple[dict[str, float], float | None]:
    """What one event adds to its rollup row, and the latency it adds to the row's sketch."""
    counts: dict[str, float] = defaultdict(float)
    latency = None
    if event.type in COUNTED_TYPES:
        counts[COUNTED_TYPES[event.type]] += 1
    elif event.type == DeviceEvent.Type.FEEDBACK:
        counts["feedback_count"] += 1
        counts["feedback_correct"] += int(event.stats.get("prediction") == event.stats.get("label"))
    elif event.type == DeviceEvent.Type.INFERENCE_STATS:
        count = event.stats.get("count", 0)
        counts["inference_count"] += count
        counts["inference_errors"] += event.stats.get("errors", 0)
        latency = latency_of(event.stats)
        if latency is not None:
            counts["latency_n"] += 1
            counts["latency_sum"] += latency
            counts["latency_sum_sq"] += latency * latency
        if "latency_ms_p50" in event.stats and count:
            counts["latency_count"] += count
            counts["latency_p50_weighted"] += event.stats["latency_ms_p50"] * count
            counts["latency_p90_weighted"] += event.stats.get("latency_ms_p90", event.stats["latency_ms_p50"]) * count
        if "accuracy" in event.stats and count:
            counts["accuracy_count"] += count
            counts["accuracy_weighted"] += event.stats["accuracy"] * count
    return counts, latency


class Group:
    """The increments of the events of one rollup row."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = defaultdict(float)
        self.latencies: list[float] = []

    def add(self, event: DeviceEvent) -> None:
        counts, latency = event_increments(event)
        for name, value in counts.items():
            self.counts[name] += value
        if latency is not None:
            self.latencies.append(latency)

    def merge(self, other: Group) -> None:
        """Add another group's increments to this one."""
        for name, value in other.counts.items():
            self.counts[name] += value
        self.latencies.extend(other.latencies)

    def fields(self, model) -> dict[str, float | int]:
        names = {f.name for f in model._meta.concrete_fields}
        return {name: _typed(name, value) for name, value in self.counts.items() if name in names}


def daily_groups(device, events: Iterable[DeviceEvent]) -> dict[tuple, Group]:
    """(day, model id, version id, device type id, region) -> the group of ``events`` counted in that row."""
    groups: dict[tuple, Group] = defaultdict(Group)
    for event in events:
        if event.version_id is None or event.model_id is None:
            continue  # not about a version of this project: kept in the history, counted nowhere
        groups[(event.at.date(), event.model_id, event.version_id, device.device_type_id, device.region)].add(event)
    return groups


def count_events(device: Device, events: Iterable[DeviceEvent]) -> None:
    """Add ``events`` (new ones only) to their rollup rows; call inside the transaction that stores them."""
    rows = [
        ({"day": day, "version_id": version_id, "device_type_id": type_id, "region": region}, {"model_id": model_id}, g)
        for (day, model_id, version_id, type_id, region), g in daily_groups(device, events).items()
    ]
    add_to_rows(DailyRollup, rows, {"project_id": device.project_id})


KeyedGroup = tuple[dict[str, Any], dict[str, Any], Group]  # the row's key, its other columns when created, what to add


def add_to_rows(model, rows: list[KeyedGroup], common: dict[str, Any]) -> None:
    """Add each group to its ``model`` row in two statements whatever the number of rows (a batch touches one
    row per day and version: statements per row made the events endpoint slow).

    1. create the missing rows, empty, and lock them all, reading their sketches: an upsert whose update changes
       nothing (``ON CONFLICT DO UPDATE ... RETURNING``; a concurrent batch may create the same rows), in key
       order, so concurrent batches lock in the same order;
    2. one upsert (every row exists by now: an update) adding the counts in SQL and writing the sketches merged
       under the lock. Sketches only add up in Python, hence they are read, merged and written back.

    Plain SQL through a server-binding cursor (``console.db.bound_cursor``): the ORM's compiling and psycopg's
    quoting of every value cost more than the database's work on these few rows.
    """
    if not rows:
        return
    key_names = list(rows[0][0])
    ordered = sorted(rows, key=lambda row: tuple(row[0].values()))
    counted = [f.name for f in model._meta.concrete_fields if f.name in COUNTED_FIELDS]
    extra_names = [*ordered[0][1], *common]
    names = [*key_names, *extra_names, *counted, "latency_sketch"]
    columns = [model._meta.get_field(name).column for name in names]
    keys, added = columns[: len(key_names)], columns[len(key_names) + len(extra_names) : -1]
    q = connection.ops.quote_name
    insert = (
        f"INSERT INTO {q(model._meta.db_table)} AS r ({', '.join(map(q, columns))}) VALUES "
        + ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(ordered))
        + f" ON CONFLICT ({', '.join(map(q, keys))}) DO UPDATE SET "
    )

    def row_values(key: dict[str, Any], extra: dict[str, Any], counts: list[Any], sketch: bytes) -> list[Any]:
        return [*key.values(), *extra.values(), *common.values(), *counts, sketch]

    empty = [_typed(name, 0.0) for name in counted]
    key_fields = [model._meta.get_field(name) for name in key_names]
    with bound_cursor() as cursor:
        cursor.execute(
            insert
            + f"{q(keys[0])} = r.{q(keys[0])} RETURNING "
            + ", ".join(q(column) for column in [*keys, columns[-1]]),
            [value for key, extra, _ in ordered for value in row_values(key, extra, empty, b"")],
        )
        current = {  # to_python: SQLite gives back a day as text
            tuple(field.to_python(value) for field, value in zip(key_fields, found[:-1], strict=True)): found[-1]
            for found in cursor.fetchall()
        }
        values: list[Any] = []
        for key, extra, group in ordered:
            sketch = current[tuple(key.values())]
            if group.latencies or not sketch:  # a created row gets its (maybe empty) sketch
                sketch = sketches.add(sketch or None, group.latencies)
            values += row_values(key, extra, [_typed(name, group.counts.get(name, 0.0)) for name in counted], sketch)
        cursor.execute(
            insert
            + ", ".join(f"{q(c)} = r.{q(c)} + EXCLUDED.{q(c)}" for c in added)
            + f", {q(columns[-1])} = EXCLUDED.{q(columns[-1])}",
            values,
        )


def add_to_row(model, key: dict[str, Any], extra: dict[str, Any], group: Group) -> None:
    """Add ``group`` to the ``model`` row at ``key`` (created with ``extra`` when missing).

    Counts are added in SQL (F expressions); the latency sketch is merged under the row's lock, since two
    sketches only add up in Python.
    """
    fields = group.fields(model)
    rows = model.objects.filter(**key)
    updates: dict[str, Any] = {name: F(name) + value for name, value in fields.items()}
    if group.latencies:
        current = rows.select_for_update().values_list("latency_sketch", flat=True).first()
        if current is not None:
            updates["latency_sketch"] = sketches.add(current, group.latencies)
    if updates and rows.update(**updates):
        return
    try:
        with transaction.atomic():
            model.objects.create(**key, **extra, **fields, latency_sketch=sketches.add(None, group.latencies))
    except IntegrityError:  # a concurrent batch created the row first: add to it
        add_to_row(model, key, extra, group)


def _typed(name: str, value: float) -> float | int:
    return value if name.endswith("_weighted") or name in _FLOAT_FIELDS else int(value)


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
