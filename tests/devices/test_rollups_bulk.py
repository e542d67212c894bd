"""The bulk path (devices.telemetry.bulk) and the migration that filled ExperimentArmDayRollup write the rollups
ingestion writes, for the same events; the per-arm-per-day rollup is the fine one summed."""

from __future__ import annotations

import importlib
from collections import defaultdict
from datetime import timedelta

import numpy as np
import pytest
from django.apps import apps
from django.utils import timezone

from devices.models import DailyRollup, DeviceEvent, ExperimentArmDayRollup, ExperimentEnrollment, ExperimentRollup
from devices.telemetry import sketches
from devices.telemetry.bulk import count_bulk
from devices.telemetry.events import record_events
from devices.telemetry.rollups import METRIC_FIELDS
from tests.devices.experiment_helpers import arm_of, enroll_devices, event, running_experiment
from tests.devices.fleet_helpers import ready_version

pytestmark = pytest.mark.django_db
QUANTILES = [0.1, 0.5, 0.9, 0.99]


def _figures(sums, sketch):
    # Sums of floats added in another order differ in the last bits only.
    return {name: round(sums[name], 6) for name in METRIC_FIELDS}, sketches.quantiles(sketch, QUANTILES)


def _rows(model, key):
    return {
        tuple(getattr(r, k) for k in key): _figures(vars(r), sketches.load(r.latency_sketch))
        for r in model.objects.all()
    }


def _snapshot():
    return (
        _rows(DailyRollup, ["day", "version_id", "device_type_id", "region"]),
        _rows(ExperimentRollup, ["arm_id", "day", "device_type_id", "region"]),
        _rows(ExperimentArmDayRollup, ["arm_id", "day"]),
        sorted(ExperimentEnrollment.objects.values_list("experiment_id", "device_id", "arm_id")),
    )


def _fine_rows_summed_per_arm_and_day():
    sums: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    blobs = defaultdict(list)
    for row in ExperimentRollup.objects.all():
        for name in METRIC_FIELDS:
            sums[(row.arm_id, row.day)][name] += getattr(row, name)
        blobs[(row.arm_id, row.day)].append(row.latency_sketch)
    return {key: _figures(sums[key], sketches.merged(blobs[key])) for key in sums}


def _ingest(owner, enrollment_key, model):
    """Three days of events from 8 devices in two regions, through ingestion; returns the devices."""
    control, challenger = ready_version(model, seed=1), ready_version(model, seed=2)
    experiment = running_experiment(model, owner, control, challenger)
    devices = enroll_devices(enrollment_key, 4) + enroll_devices(enrollment_key, 4, prefix="fr", region="FR")
    rng = np.random.default_rng(7)
    now = timezone.now()
    for device in devices:
        arm = arm_of(experiment, device)
        served = arm.version_id
        batch = [event("download_started", model.name, served, now - timedelta(days=3))]
        batch.append(event("install_succeeded", model.name, served, now - timedelta(days=3)))
        for day in range(3):
            at = now - timedelta(days=day, minutes=5)
            for latency in rng.lognormal(3, 0.3, 4):
                batch.append(
                    event("inference_stats", model.name, served, at, count=20, errors=1, latency_ms_mean=float(latency))
                )
            batch.append(event("feedback", model.name, served, at, prediction=1, label=int(rng.integers(0, 2))))
        record_events(device=device, events=batch, now=now)
    return devices


def test_arm_day_rollup__is_the_experiment_rollup_summed_over_device_types_and_regions(owner, enrollment_key, model):
    _ingest(owner, enrollment_key, model)

    assert ExperimentRollup.objects.count() > ExperimentArmDayRollup.objects.count() > 0
    assert _rows(ExperimentArmDayRollup, ["arm_id", "day"]) == _fine_rows_summed_per_arm_and_day()


def test_bulk_path__equals_ingestion_for_the_same_events(owner, enrollment_key, model):
    devices = _ingest(owner, enrollment_key, model)
    ingested = _snapshot()
    assert ingested[1] and ingested[2] and len(ingested[3]) == 8

    DailyRollup.objects.all().delete()
    ExperimentRollup.objects.all().delete()
    ExperimentArmDayRollup.objects.all().delete()
    ExperimentEnrollment.objects.all().delete()
    events = {
        device.pk: list(DeviceEvent.objects.filter(device=device).exclude(event_id__startswith="server:"))
        for device in devices
    }
    count_bulk(devices, events)

    assert _snapshot() == ingested


def test_migration_0011__fills_the_arm_day_rollups_ingestion_writes(owner, enrollment_key, model):
    _ingest(owner, enrollment_key, model)
    ingested = _rows(ExperimentArmDayRollup, ["arm_id", "day"])
    ExperimentArmDayRollup.objects.all().delete()

    migration = importlib.import_module("devices.migrations.0011_experiment_arm_day_rollup")
    migration.sum_existing_rows(apps, None)

    assert _rows(ExperimentArmDayRollup, ["arm_id", "day"]) == ingested
    experiments = set(ExperimentRollup.objects.values_list("arm_id", "experiment_id"))
    assert set(ExperimentArmDayRollup.objects.values_list("arm_id", "experiment_id")) == experiments
