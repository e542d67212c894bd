"""What each dashboard shows, read from rollups (``filters.rollups_in``) and current device state, never raw events.

Each builder returns the page's charts (``charts.Chart``: figure, table, CSV) and the rest of its context. The CSV
view calls the same builder, so a CSV always holds exactly the numbers its chart plots.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from console.models import CompatibilityResult, Model, ModelVersion
from devices.core.failure_reasons import LABELS, REASONS, median_from_buckets
from devices.dashboards.charts import Chart, bars, lines
from devices.dashboards.filters import devices_in, first_day, rollups_in
from devices.models import DELAY_COLUMNS, RUNNING, Device, DeviceModelState, DeviceType, Rollout
from jobs.models import Job

FUNNEL = [
    ("offered", "offered"),
    ("download_started", "download started"),
    ("download_completed", "downloaded"),
    ("failed", "failed"),
    ("install_succeeded", "installed"),
]
FAILING_RATE = 0.05  # a version whose downloads or installs fail this often is highlighted
ENROLL_HINT = (
    "No device has reported yet: issue an enrollment key on the Fleet page, then enroll one with "
    "`model-agent enroll --url <console> --key <key> ...` or simulate a fleet with `python -m devices.agent.simulate`."
)
FAILURES = Sum("download_failed") + Sum("install_failed")


def _funnel_sums() -> dict[str, Any]:
    return {
        "offered": Sum("offered"),
        "download_started": Sum("download_started"),
        "download_completed": Sum("download_completed"),
        "failed": FAILURES,
        "install_succeeded": Sum("install_succeeded"),
    }


def _versions_named(version_ids: Iterable[int]) -> dict[int, tuple[int, str, int]]:
    """version id -> (its place in ORDER BY model name, number; model name; number). Rollups are summed per ids
    and named afterwards: joining the names onto each of thousands of rollup rows cost more than the sums."""
    named = (
        ModelVersion.objects.filter(pk__in=set(version_ids))
        .order_by("model__name", "number")
        .values_list("pk", "model__name", "number")
    )
    return {pk: (place, name, number) for place, (pk, name, number) in enumerate(named)}


def _types_named(type_ids: Iterable[int]) -> dict[int, tuple[int, str]]:
    """device type id -> (its place in ORDER BY slug; slug)."""
    named = DeviceType.objects.filter(pk__in=set(type_ids)).order_by("slug").values_list("pk", "slug")
    return {pk: (place, slug) for place, (pk, slug) in enumerate(named)}


def _sum_by(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], tuple]) -> dict[tuple, dict[str, Any]]:
    """Rows summed per ``key`` (the names of what they were grouped by: two ids may share a name), in key order."""
    summed: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        found = summed.setdefault(key(row), dict.fromkeys(row, 0))
        for name, value in row.items():
            found[name] = found[name] + (value or 0) if name not in ("version_id", "device_type_id") else value
    return dict(sorted(summed.items()))


# -- project overview -------------------------------------------------------------------------------------------


class Configuration(NamedTuple):
    """A project's devices of one device type, region and app version, counted as the dashboards count them."""

    device_type: str
    region: str
    app_version: str
    enrolled: int  # not revoked
    active_24h: int  # not revoked, seen in the last 24 hours
    active_7d: int


def configurations(project, now: datetime | None = None) -> list[Configuration]:
    """The project's devices counted per configuration, in one pass over them: the filter form's options, the
    device counts and the devices-by-type and -by-region charts all read these few rows instead of scanning the
    fleet once each. A configuration of revoked devices only is kept (counted 0): it stays a filter option.
    In the database's order of device type slugs."""
    now = now or timezone.now()
    live = Q(revoked_at=None)
    rows = (
        Device.objects.filter(project=project)
        .values_list("device_type_id", "region", "app_version")
        .annotate(
            enrolled=Count("pk", filter=live),
            active_24h=Count("pk", filter=live & Q(last_seen_at__gte=now - timedelta(hours=24))),
            active_7d=Count("pk", filter=live & Q(last_seen_at__gte=now - timedelta(days=7))),
        )
        .order_by()
    )
    found = list(rows)
    # The slugs afterwards: joining them onto every device's row cost more than the count.
    rank = _types_named(row[0] for row in found)
    found.sort(key=lambda row: (rank[row[0]][0], row[1], row[2]))
    return [Configuration(rank[type_id][1], *rest) for type_id, *rest in found]


def configurations_in(found: list[Configuration], filters: dict[str, Any]) -> list[Configuration]:
    """The configurations inside the filters (``filters.devices_in`` for these rows)."""
    wanted = {name: filters[name] for name in ("device_type", "region", "app_version") if name in filters}
    return [row for row in found if all(getattr(row, name) == value for name, value in wanted.items())]


def overview(
    project, filters: dict[str, Any], only: str | None = None, found: list[Configuration] | None = None
) -> dict[str, Any]:
    """The page's context; with ``only`` (a chart id: a CSV asks for it), that chart alone. ``found``: the
    project's ``configurations`` when the caller has them already."""
    rollups = rollups_in(filters, project=project)
    # Read when a chart or the counts need it (a CSV of the funnel does not).
    fleet = functools.cache(lambda: configurations_in(configurations(project) if found is None else found, filters))
    builders: dict[str, Callable[[], Chart]] = {
        "funnel": lambda: _funnel_over_time(rollups, filters),
        "failure_reasons": lambda: _failure_reasons(rollups),
        "failing_versions": lambda: _failing_versions(rollups),
        "devices_by_version": lambda: _devices_by_version(project, filters),
        "devices_by_type": lambda: _devices_by(
            fleet(), "device_type", "devices_by_type", "Devices by device type", "device type"
        ),
        "devices_by_region": lambda: _devices_by(fleet(), "region", "devices_by_region", "Devices by region", "region"),
    }
    if only is not None:
        return {"charts": [builders[only]()] if only in builders else [], "chart_ids": list(builders)}
    charts = [build() for build in builders.values()]
    counts = {name: sum(getattr(row, name) for row in fleet()) for name in ("enrolled", "active_24h", "active_7d")}
    jobs = Job.objects.filter(project=project).aggregate(
        running=Count("pk", filter=Q(state__in=[Job.State.QUEUED, Job.State.RUNNING])),
        failed=Count("pk", filter=Q(state=Job.State.FAILED)),
    )
    rollouts = (
        Rollout.objects.filter(project=project)
        .exclude(state__in=[Rollout.State.COMPLETED, Rollout.State.ROLLED_BACK, Rollout.State.REJECTED])
        .select_related("model", "version")
        .order_by("-created_at")[:20]
    )
    return {"charts": charts, "devices": counts, "jobs": jobs, "rollouts": list(rollouts)}


def _funnel_over_time(rollups, filters) -> Chart:
    by_day = {row["day"]: row for row in rollups.values("day").annotate(**_funnel_sums()).order_by("day")}
    start = first_day(filters)
    days = [start + timedelta(days=n) for n in range(int(filters.get("days", 14)))]
    rows = [[day.isoformat(), *[(by_day.get(day) or {}).get(key) or 0 for key, _ in FUNNEL]] for day in days]
    series = {label: [row[1 + index] for row in rows] for index, (_, label) in enumerate(FUNNEL)}
    return Chart(
        id="funnel",
        title="Download and install funnel per day",
        columns=["day", *[label for _, label in FUNNEL]],
        rows=rows,
        figure=lines([row[0] for row in rows], series, "devices' events") if by_day else None,
        empty=ENROLL_HINT,
    )


def _failure_reasons(rollups) -> Chart:
    sums = rollups.aggregate(**{reason: Sum(f"failed_{reason}") for reason in REASONS})
    counts = [int(sums[reason] or 0) for reason in REASONS]
    rows: list[list[Any]] = [[LABELS[reason], count] for reason, count in zip(REASONS, counts, strict=True)]
    failed = sum(counts)
    return Chart(
        id="failure_reasons",
        title="Failed downloads and installs by reason",
        columns=["reason", "failures"],
        rows=rows,
        figure=bars([row[0] for row in rows], {"failures": [row[1] for row in rows]}, "failures") if failed else None,
        empty="No download or install failed in this range.",
    )


def _failing_versions(rollups) -> Chart:
    per_id = list(
        rollups.values("version_id")
        .annotate(
            started=Sum("download_started"),
            download_failed=Sum("download_failed"),
            installs=Sum("install_succeeded") + Sum("install_failed"),
            install_failed=Sum("install_failed"),
        )
        .order_by()
    )
    versions = _versions_named(row["version_id"] for row in per_id)
    per_version = [
        {**row, "model__name": versions[row["version_id"]][1], "version__number": versions[row["version_id"]][2]}
        for row in sorted(per_id, key=lambda row: versions[row["version_id"]][0])
    ]
    rows, highlight = [], set()
    for index, row in enumerate(per_version):
        download_rate = row["download_failed"] / row["started"] if row["started"] else 0.0
        install_rate = row["install_failed"] / row["installs"] if row["installs"] else 0.0
        if max(download_rate, install_rate) >= FAILING_RATE:
            highlight.add(index)
        rows.append(
            [
                f"{row['model__name']} v{row['version__number']}",
                row["started"],
                row["download_failed"],
                round(100 * download_rate, 1),
                row["installs"],
                row["install_failed"],
                round(100 * install_rate, 1),
            ]
        )
    labels = [row[0] for row in rows]
    figure = bars(
        labels, {"download failure %": [row[3] for row in rows], "install failure %": [row[6] for row in rows]}, "%"
    )
    return Chart(
        id="failing_versions",
        title="Download and install failure rate per version",
        columns=[
            "version",
            "downloads started",
            "downloads failed",
            "download failure %",
            "installs",
            "installs failed",
            "install failure %",
        ],
        rows=rows,
        figure=figure if rows else None,
        empty=ENROLL_HINT,
        note=f"Versions failing {FAILING_RATE:.0%} or more of their downloads or installs are marked failing.",
        highlight=highlight,
    )


def _devices_by_version(project, filters) -> Chart:
    # A state's model is of its device's project (check-in resolves the project's models only), so the fleet is
    # not joined to every state: the few revoked devices are left out through their own small index, and a
    # filter picks its devices through theirs.
    revoked = Device.objects.filter(project=project, revoked_at__isnull=False).values("pk")
    states = DeviceModelState.objects.filter(model__project=project, installed_state=RUNNING).exclude(
        device__in=revoked
    )
    if any(name in filters for name in ("device_type", "region", "app_version")):
        states = states.filter(device__in=devices_in(Device.objects.filter(project=project), filters).values("pk"))
    # Counted per ids, named afterwards: joining the names onto every device's row cost more than the count.
    per_version = list(states.values_list("model_id", "installed_version_id").annotate(devices=Count("pk")).order_by())
    # Models in the database's order of their names, as ORDER BY name gave them.
    rank = {
        pk: (index, name)
        for index, (pk, name) in enumerate(
            Model.objects.filter(pk__in={row[0] for row in per_version}).order_by("name").values_list("pk", "name")
        )
    }
    numbers = dict(ModelVersion.objects.filter(pk__in={row[1] for row in per_version}).values_list("pk", "number"))
    counted = [(rank[model_id], numbers.get(version_id), devices) for model_id, version_id, devices in per_version]
    rows = [
        [f"{name} v{number}" if number else f"{name} (unknown file)", devices]
        # by name, then number, the unknown file (no number) last
        for (_, name), number, devices in sorted(counted, key=lambda row: (row[0][0], row[1] is None, row[1] or 0))
    ]
    return Chart(
        id="devices_by_version",
        title="Devices by installed version",
        columns=["version", "devices"],
        rows=rows,
        figure=bars([r[0] for r in rows], {"devices": [r[1] for r in rows]}, "devices") if rows else None,
        empty="No device runs a version yet: set a default version or a rule on a model's Delivery page.",
    )


def _devices_by(fleet: list[Configuration], field: str, chart_id: str, title: str, label: str) -> Chart:
    devices: dict[str, int] = {}
    for row in fleet:  # in the database's order of device types (``configurations``)
        if row.enrolled:
            devices[getattr(row, field)] = devices.get(getattr(row, field), 0) + row.enrolled
    # Regions (two capital letters, or none) sort the same in Python as in any collation.
    keys = sorted(devices) if field == "region" else list(devices)
    rows: list[list[Any]] = [[key or "unknown", devices[key]] for key in keys]
    return Chart(
        id=chart_id,
        title=title,
        columns=[label, "devices"],
        rows=rows,
        figure=bars([r[0] for r in rows], {"devices": [r[1] for r in rows]}, "devices") if rows else None,
        empty=ENROLL_HINT,
    )


# -- download status --------------------------------------------------------------------------------------------


def download_status(project, filters: dict[str, Any], stuck_hours: int, only: str | None = None) -> dict[str, Any]:
    """The page's context; with ``only`` (a CSV asks for a chart), its chart alone, without the stuck list."""
    rollups = rollups_in(filters, project=project)
    per_ids = list(
        rollups.values("version_id", "device_type_id")
        .annotate(
            offered=Sum("offered"),
            downloaded=Sum("download_completed"),
            installed=Sum("install_succeeded"),
            **{f"failed_{reason}": Sum(f"failed_{reason}") for reason in REASONS},
            **{column: Sum(column) for column in DELAY_COLUMNS},
        )
        .order_by()
    )
    versions = _versions_named(row["version_id"] for row in per_ids)
    slugs = _types_named(row["device_type_id"] for row in per_ids)
    # ORDER BY model name, version number, device type slug
    grouped = _sum_by(per_ids, lambda row: (*versions[row["version_id"]], slugs[row["device_type_id"]][1]))
    rows = []
    for (_, model_name, number, slug), row in grouped.items():
        median = median_from_buckets([row[column] for column in DELAY_COLUMNS])
        rows.append(
            [
                f"{model_name} v{number}",
                slug,
                row["offered"],
                row["downloaded"],
                *[row[f"failed_{reason}"] for reason in REASONS],
                row["installed"],
                None if median is None else round(median / 60, 1),
            ]
        )
    labels = [f"{row[0]} · {row[1]}" for row in rows]
    failed = [sum(row[4 : 4 + len(REASONS)]) for row in rows]
    chart = Chart(
        id="download_status",
        title="Offered, downloaded, failed and installed per version and device type",
        columns=[
            "version",
            "device type",
            "offered",
            "downloaded",
            *[f"failed: {LABELS[r]}" for r in REASONS],
            "installed",
            "median offer to install (min)",
        ],
        rows=rows,
        figure=bars(
            labels,
            {
                "offered": [r[2] for r in rows],
                "downloaded": [r[3] for r in rows],
                "failed": failed,
                "installed": [r[4 + len(REASONS)] for r in rows],
            },
            "devices' events",
        )
        if rows
        else None,
        empty=ENROLL_HINT,
    )
    if only is not None:
        return {"charts": [chart]}
    return {"charts": [chart], "stuck": stuck_devices(project, filters, stuck_hours)}


class StuckDevice(NamedTuple):
    """A row of the stuck list: a device offered a version it has not installed and run since ``since``."""

    device_id: str
    model: str
    offered: int  # the version number offered
    installed: int | None  # the number of the version it runs, None: none it reported as one of this model's
    installed_state: str
    since: datetime
    reason: str


def stuck_devices(project, filters: dict[str, Any], hours: int, limit: int = 50) -> list[StuckDevice]:
    """Devices whose installed version has not matched what they were offered for ``hours`` or more, the longest
    stuck first. Plain rows: building the states, devices, models and versions of 50 rows cost more than
    finding them."""
    since = timezone.now() - timedelta(hours=hours)
    states = devices_in(
        DeviceModelState.objects.filter(
            device__project=project, device__revoked_at=None, desired_version__isnull=False, resolved_at__lte=since
        ).exclude(installed_version=F("desired_version"), installed_state=RUNNING),
        filters,
        prefix="device__",
    )
    rows = states.values_list(
        "device__device_id",
        "model__name",
        "desired_version__number",
        "installed_version__number",
        "installed_state",
        "resolved_at",
        "reason",
    ).order_by("resolved_at")[:limit]
    return [StuckDevice(*row) for row in rows]


# -- model comparison -------------------------------------------------------------------------------------------


def _server_figures(version: ModelVersion) -> tuple[float | None, float | None, int | None]:
    benchmark = (version.metrics or {}).get("benchmark") or {}
    latency = (benchmark.get("latency_1_thread") or {}).get("median_ms")
    accuracy = (benchmark.get("evaluation") or {}).get("accuracy")
    return latency, accuracy, benchmark.get("download_bytes")


def model_comparison(model, filters: dict[str, Any], only: str | None = None) -> dict[str, Any]:
    """The page's context; with ``only`` (a CSV asks for a chart), its chart alone, without lineage and matrix."""
    versions = list(model.versions.select_related("parent").order_by("number"))
    rollups = rollups_in(filters, model=model)
    per_ids = list(
        rollups.values("version_id", "device_type_id")
        .annotate(
            latency_count=Sum("latency_count"),
            latency=Sum("latency_p50_weighted"),
            accuracy_count=Sum("accuracy_count"),
            accuracy=Sum("accuracy_weighted"),
        )
        .order_by()
    )
    slugs = _types_named(row["device_type_id"] for row in per_ids)
    on_device = _sum_by(per_ids, lambda row: (row["version_id"], slugs[row["device_type_id"]][1]))
    types = sorted({slug for _, slug in on_device})
    rows: list[list[Any]] = []
    ratios: dict[str, list[float | None]] = {slug: [] for slug in types}
    for version in versions:
        server_latency, server_accuracy, download = _server_figures(version)
        for slug in types:
            row = on_device.get((version.pk, slug))
            latency = row["latency"] / row["latency_count"] if row and row["latency_count"] else None
            accuracy = row["accuracy"] / row["accuracy_count"] if row and row["accuracy_count"] else None
            ratio = latency / server_latency if latency is not None and server_latency else None
            ratios[slug].append(None if ratio is None else round(ratio, 2))
            if row:
                rows.append(
                    [
                        f"v{version.number}",
                        slug,
                        version.size_bytes,
                        download,
                        _r(server_latency),
                        _r(server_accuracy),
                        _r(latency),
                        _r(accuracy),
                        None if ratio is None else round(ratio, 2),
                    ]
                )
        if not types or not any((version.pk, slug) in on_device for slug in types):
            rows.append(
                [
                    f"v{version.number}",
                    "",
                    version.size_bytes,
                    download,
                    _r(server_latency),
                    _r(server_accuracy),
                    None,
                    None,
                    None,
                ]
            )
    has_ratio = any(value is not None for values in ratios.values() for value in values)
    ratio_chart = Chart(
        id="latency_ratio",
        title="On-device latency ÷ server benchmark, per device type",
        columns=[
            "version",
            "device type",
            "file size (bytes)",
            "download size (bytes)",
            "server latency (ms)",
            "server accuracy",
            "on-device latency p50 (ms)",
            "on-device accuracy",
            "on-device ÷ server latency",
        ],
        rows=rows,
        figure=bars([f"v{v.number}" for v in versions], {slug: ratios[slug] for slug in types}, "× server latency")
        if has_ratio
        else None,
        empty="No ratio yet: it needs a server benchmark (optimize a version) and inference reports from devices "
        "running that version.",
        note="Above 1: devices run the version slower than the server's benchmark said.",
    )
    if only is not None:
        return {"charts": [ratio_chart]}
    compatibility = {
        (row.version_id, row.device_type_id): row for row in CompatibilityResult.objects.filter(version__model=model)
    }
    device_types = list(DeviceType.objects.visible_to(model.project_id).order_by("name"))
    matrix = [{"version": v, "cells": [compatibility.get((v.pk, t.pk)) for t in device_types]} for v in versions]
    return {
        "charts": [ratio_chart],
        "lineage": lineage(versions),
        "device_types": device_types,
        "matrix": matrix,
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def lineage(versions: list[ModelVersion]) -> list[dict[str, Any]]:
    """The versions as a forest: roots first, each with its children and the transform on the edge."""
    children: dict[int | None, list[ModelVersion]] = {}
    numbers = {v.pk for v in versions}
    for version in versions:
        parent = version.parent_id if version.parent_id in numbers else None
        children.setdefault(parent, []).append(version)

    def node(version: ModelVersion) -> dict[str, Any]:
        return {"version": version, "children": [node(c) for c in children.get(version.pk, [])]}

    return [node(root) for root in children.get(None, [])]
