"""Counting many devices' events at once: the grouping ``record_events`` does batch by batch, done in memory
and written with one bulk insert per table. For backfills, imports and the benchmark (bench/experiments.py);
``tests/devices/test_rollups_bulk.py`` proves it writes what ingestion writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from django.db import transaction

from devices.delivery.cache import running_experiments
from devices.models import DailyRollup, DeviceEvent, ExperimentArmDayRollup, ExperimentEnrollment, ExperimentRollup
from devices.telemetry import sketches
from devices.telemetry.experiment_rollups import arm_day_groups, arm_groups, runnable_versions
from devices.telemetry.rollups import Group, add_to_row, daily_groups

BATCH = 2000


def _merge(into: dict[tuple, Group], groups: Mapping[tuple, Group]) -> None:
    for key, group in groups.items():
        into.setdefault(key, Group()).merge(group)


class BulkCounter:
    """Groups many devices' events in memory (``add``, as often as needed), then writes them (``write``)."""

    def __init__(self) -> None:
        self.daily: dict[tuple, Group] = {}
        self.per_arm: dict[tuple, Group] = {}
        self.enrollments: list[ExperimentEnrollment] = []
        self.projects: dict[tuple, int] = {}
        self._plans: dict | None = None
        self._runnable: dict[int, set[int]] = {}

    def add(self, devices: Sequence, events_of: Mapping[int, Iterable[DeviceEvent]]) -> BulkCounter:
        """Group ``events_of[device.pk]`` of each device (a Device or a DeviceRecord-like row).

        The events need ``model_id``, ``version_id``, ``type``, ``at``, ``received_at`` and ``stats``; they are
        not stored here.
        """
        if self._plans is None:
            model_ids = sorted({e.model_id for events in events_of.values() for e in events if e.model_id})
            self._plans = running_experiments(model_ids) if model_ids else {}
        plans = self._plans
        arm_versions = {arm.version_id for ps in plans.values() for p in ps for arm in p.arms}
        for device in devices:
            events = list(events_of.get(device.pk, ()))
            groups = daily_groups(device, events)
            for key in groups:
                self.projects[key] = device.project_id
            _merge(self.daily, groups)
            if plans:
                if device.device_type_id not in self._runnable:
                    self._runnable[device.device_type_id] = runnable_versions(device.device_type_id, arm_versions)
                can_run = self._runnable[device.device_type_id].__contains__
                arm_grouped, enrolled = arm_groups(device, events, plans, can_run)
                _merge(self.per_arm, arm_grouped)
                self.enrollments.extend(enrolled)
        return self

    def write(self) -> None:
        """Write the groups, in one transaction: one bulk insert per table; rows that exist already are added to
        (under their row lock), as ingestion would."""
        with transaction.atomic():
            self._write()

    def _write(self) -> None:
        ExperimentEnrollment.objects.bulk_create(self.enrollments, ignore_conflicts=True, batch_size=BATCH)
        _write(
            DailyRollup,
            {
                key: (
                    {"day": key[0], "version_id": key[2], "device_type_id": key[3], "region": key[4]},
                    {"project_id": self.projects[key], "model_id": key[1]},
                )
                for key in self.daily
            },
            self.daily,
        )
        _write(
            ExperimentRollup,
            {
                key: (
                    {"arm_id": key[1], "day": key[2], "device_type_id": key[3], "region": key[4]},
                    {"experiment_id": key[0]},
                )
                for key in self.per_arm
            },
            self.per_arm,
        )
        per_arm_day = arm_day_groups(self.per_arm)
        _write(
            ExperimentArmDayRollup,
            {key: ({"arm_id": key[1], "day": key[2]}, {"experiment_id": key[0]}) for key in per_arm_day},
            per_arm_day,
        )


def count_bulk(devices: Sequence, events_of: Mapping[int, Iterable[DeviceEvent]]) -> None:
    """Count ``events_of[device.pk]`` of each device into the rollups at once (``BulkCounter``)."""
    BulkCounter().add(devices, events_of).write()


def _write(model, keys: Mapping[tuple, tuple[dict, dict]], groups: Mapping[tuple, Group]) -> None:
    fresh = []
    for key, group in sorted(groups.items()):
        lookup, extra = keys[key]
        if model.objects.filter(**lookup).exists():
            add_to_row(model, lookup, extra, group)
            continue
        fresh.append(
            model(**lookup, **extra, **group.fields(model), latency_sketch=sketches.add(None, group.latencies))
        )
    model.objects.bulk_create(fresh, batch_size=BATCH)
