"""What a rollout's page shows of its progress: which devices each stage reaches, what they did, the health
figures next to the thresholds, and the stages over time.

Reads only: the targeted devices (bounded, ``MAX_DEVICES``), their ``DeviceModelState`` for the model, and the
daily rollups of the version. Which stage a device belongs to is ``rollout_plan.in_stage``, as at check-in.
Halting is decided by the beat task, not here: these figures are what a person reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from devices.core import rollout_plan
from devices.core.targeting.match import rule_matches
from devices.core.targeting.rules import Rule
from devices.models import DailyRollup, Device, DeviceModelState, Rollout
from devices.rollouts import health as reported

# The page walks at most this many enrolled devices (the oldest first) to place them in stages; past it the
# figures say they cover a sample.
MAX_DEVICES = 20_000
INSTALLED, FAILED = "running", "failed"


@dataclass
class StageFigures:
    number: int  # 1-based
    percent: float
    dwell_minutes: int
    targeted: int = 0  # targeted devices that join at this stage (not in an earlier one)
    offered: int = 0  # of them, told to run the version at their last check-in
    installed: int = 0  # report it installed and running
    failed: int = 0  # report its install failed
    rate_cap: int | None = None  # devices per minute offered the version in this stage; None: no cap
    started_at: datetime | None = None
    recorded: dict[str, Any] = field(default_factory=dict)  # the beat task's figures (stage_history), if any


@dataclass
class Progress:
    stages: list[StageFigures]
    devices: int  # enrolled devices in the project
    walked: int  # of them, placed (fewer only past MAX_DEVICES)
    targeted: int


def target_rule(rollout: Rollout) -> Rule:
    """The rollout's target as a rule: the one matcher targeting uses."""
    return Rule.from_dict({"id": 0, "priority": 0, "version": rollout.version_id, "conditions": rollout.target})


def stage_of(rollout: Rollout, device_key: str) -> int:
    """0-based index of the first stage that reaches the device (stages are nested)."""
    for index, stage in enumerate(rollout.stages):
        if rollout_plan.in_stage(device_key, rollout.salt, stage["percent"]):
            return index
    return len(rollout.stages) - 1  # the last stage is 100 %


def targeted_devices(rollout: Rollout) -> Iterator[tuple[int, int]]:
    """(device pk, stage index) of each enrolled device the target reaches, at most ``MAX_DEVICES`` walked."""
    rule = target_rule(rollout)
    rows = (
        Device.objects.filter(project_id=rollout.project_id, revoked_at=None)
        .order_by("pk")
        .values_list("pk", "device_id", "device_type__slug", "region", "app_version", "attributes")[:MAX_DEVICES]
    )
    for pk, device_id, device_type, region, app_version, attributes in rows.iterator(chunk_size=2000):
        config = {
            "device_id": device_id,
            "device_type": device_type,
            "region": region,
            "app_version": app_version,
            "attributes": attributes,
        }
        if rule_matches(rule, config)[0]:
            yield pk, stage_of(rollout, device_id)


def progress(rollout: Rollout) -> Progress:
    stages = [
        StageFigures(
            number=i + 1,
            percent=s["percent"],
            dwell_minutes=s["dwell_minutes"],
            rate_cap=rollout_plan.rate_cap(i, rollout.thresholds),
        )
        for i, s in enumerate(rollout.stages)
    ]
    for figures, (started, recorded) in zip(stages, stage_times(rollout), strict=True):
        figures.started_at, figures.recorded = started, recorded
    placed = dict(targeted_devices(rollout))
    for stage_index in placed.values():
        stages[stage_index].targeted += 1
    states = DeviceModelState.objects.filter(
        model_id=rollout.model_id, device__project_id=rollout.project_id, device__revoked_at=None
    ).values_list("device_id", "desired_version_id", "installed_version_id", "installed_state")
    for device_pk, desired, installed, installed_state in states.iterator(chunk_size=2000):
        if device_pk not in placed:
            continue
        figures = stages[placed[device_pk]]
        figures.offered += desired == rollout.version_id
        figures.installed += installed == rollout.version_id and installed_state == INSTALLED
        figures.failed += installed == rollout.version_id and installed_state == FAILED
    devices = Device.objects.filter(project_id=rollout.project_id, revoked_at=None).count()
    return Progress(stages=stages, devices=devices, walked=min(devices, MAX_DEVICES), targeted=len(placed))


def stage_times(rollout: Rollout) -> list[tuple[datetime | None, dict[str, Any]]]:
    """When each stage started (None: not yet) and what the beat task recorded about it.

    From ``stage_history`` when the rollout keeps one ([{started_at, ...figures}], one per stage reached), else
    from ``started_at`` (stage 1) and ``stage_started_at`` (the current stage); stages between them show no time.
    """
    history = getattr(rollout, "stage_history", None) or []
    times: list[tuple[datetime | None, dict[str, Any]]] = [(None, {}) for _ in rollout.stages]
    if history:
        for index, entry in enumerate(history[: len(times)]):
            if not isinstance(entry, dict):
                continue
            started = entry.get("started_at")
            if isinstance(started, str):
                try:
                    started = datetime.fromisoformat(started)
                except ValueError:
                    started = None
            stage = entry.get("stage", index)
            stage = stage if isinstance(stage, int) and 0 <= stage < len(times) else index
            times[stage] = (started, {k: v for k, v in entry.items() if k not in ("started_at", "stage")})
        return times
    if rollout.started_at is not None:
        times[0] = (rollout.started_at, {})
        if rollout.stage_started_at is not None and rollout.current_stage < len(times):
            times[rollout.current_stage] = (rollout.stage_started_at, {})
    return times


def timeline(rollout: Rollout, now: datetime) -> list[dict[str, Any]]:
    """Rows of the stages-over-time chart, its table and CSV: each stage's percent, when it started, and, for
    stages still ahead of a running rollout, when it would start at the earliest (after the dwell times)."""
    rows: list[dict[str, Any]] = []
    times = stage_times(rollout)
    running = rollout.state == Rollout.State.RUNNING
    earliest: datetime | None = None
    for index, (stage, (started, _)) in enumerate(zip(rollout.stages, times, strict=True)):
        planned = None
        if started is None and running and index > rollout.current_stage and earliest is not None:
            planned = earliest
        rows.append(
            {
                "stage": index + 1,
                "percent": stage["percent"],
                "dwell_minutes": stage["dwell_minutes"],
                "started_at": started.isoformat() if started else "",
                "earliest_start": planned.isoformat() if planned else "",
            }
        )
        anchor = started or planned
        earliest = anchor + timedelta(minutes=stage["dwell_minutes"]) if anchor else None
    if rollout.ended_at is not None:
        rows.append(
            {
                "stage": "end",
                "percent": 100 if rollout.state == Rollout.State.COMPLETED else 0,
                "dwell_minutes": "",
                "started_at": rollout.ended_at.isoformat(),
                "earliest_start": "",
            }
        )
    return rows


TIMELINE_COLUMNS = ["stage", "percent", "dwell_minutes", "started_at", "earliest_start"]


def health(rollout: Rollout, now: datetime | None = None) -> list[rollout_plan.Measure]:
    """The current stage's measures against the thresholds, exactly as the beat judges them (one rule:
    ``rollout_plan.health`` over ``health.cumulative_figures`` since the stage opened)."""
    if rollout.started_at is None:
        return []
    now = now or timezone.now()
    entry = rollout.stage_history[-1] if rollout.stage_history else {}
    figures = reported.cumulative_figures(rollout, now).since(rollout_plan.Figures.of(entry.get("baseline")))
    return rollout_plan.health(figures, rollout.thresholds)


def funnel(rollout: Rollout) -> dict[str, int]:
    """The version's download/install events since the rollout started, summed from the rollups."""
    if rollout.started_at is None:
        return {}
    names = ("download_started", "download_completed", "download_failed", "install_succeeded", "install_failed")
    sums = DailyRollup.objects.filter(
        model_id=rollout.model_id, version_id=rollout.version_id, day__gte=rollout.started_at.date()
    ).aggregate(**{n: Sum(n) for n in names})
    return {name.replace("_", " "): sums[name] or 0 for name in names}
