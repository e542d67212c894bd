"""What devices reported about a rollout's version, read from the daily rollups (devices.telemetry.rollups).

One aggregate over the rollup rows of the version and of the version it replaces since the rollout started:
rows per day, device type and region, so the read is bounded by days x types x regions, never by the fleet
or the number of events. The counters are cumulative; the engine keeps a copy when a stage opens and judges
the difference (``rollout_plan.Figures.since``), so a stage is judged on what its own devices reported.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q, Sum

from devices.core.rollout_plan import Figures
from devices.models import DailyRollup, Rollout

# The replaced version's latency is its mean over this many days before the rollout started, and since.
BASELINE_DAYS = 7

COUNTERS = ("download_completed", "download_failed", "install_succeeded", "install_failed")


def cumulative_figures(rollout: Rollout, now: datetime) -> Figures:
    """Everything reported about ``rollout``'s version since the day it started, with the replaced version's
    mean p50 latency as the baseline (None when it reported none)."""
    started = (rollout.started_at or now).date()
    mine = Q(version_id=rollout.version_id, day__gte=started)
    # Aliases differ from the field names: Django refuses an aggregate named like the column it sums.
    sums: dict[str, Sum] = {f"sum_{name}": Sum(name, filter=mine, default=0) for name in (*COUNTERS, "latency_count")}
    sums["sum_latency_p50_weighted"] = Sum("latency_p50_weighted", filter=mine, default=0.0)
    versions = [rollout.version_id]
    if rollout.previous_version_id is not None:
        before = Q(version_id=rollout.previous_version_id, day__gte=started - timedelta(days=BASELINE_DAYS))
        sums["previous_count"] = Sum("latency_count", filter=before, default=0)
        sums["previous_weighted"] = Sum("latency_p50_weighted", filter=before, default=0.0)
        versions.append(rollout.previous_version_id)
    row = DailyRollup.objects.filter(
        project_id=rollout.project_id,
        model_id=rollout.model_id,
        day__gte=started - timedelta(days=BASELINE_DAYS),
        version_id__in=versions,
    ).aggregate(**sums)
    previous_count = row.get("previous_count") or 0
    previous_weighted = row.get("previous_weighted") or 0.0
    return Figures(
        **{name: int(row[f"sum_{name}"]) for name in (*COUNTERS, "latency_count")},
        latency_p50_weighted=float(row["sum_latency_p50_weighted"]),
        previous_latency_p50_ms=previous_weighted / previous_count if previous_count else None,
    )
