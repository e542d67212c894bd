"""The bulk path (devices.telemetry.bulk) writes the rollups ingestion writes, for the same events."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from devices.models import DailyRollup, DeviceEvent, ExperimentEnrollment, ExperimentRollup
from devices.telemetry import sketches
from devices.telemetry.bulk import count_bulk
from devices.telemetry.events import record_events
from devices.telemetry.rollups import METRIC_FIELDS
from tests.devices.experiment_helpers import arm_of, enroll_devices, event, running_experiment
from tests.devices.fleet_helpers import ready_version

pytestmark = pytest.mark.django_db


def _snapshot():
    def rows(model, key):
        return {
            tuple(getattr(r, k) for k in key): (
                # Sums of floats added in another order differ in the last bits only.
                {name: round(getattr(r, name), 6) for name in METRIC_FIELDS},
                sketches.quantiles(sketches.load(r.latency_sketch), [0.1, 0.5, 0.9, 0.99]),
            )
            for r in model.objects.all()
        }

    return (
        rows(DailyRollup, ["day", "version_id", "device_type_id", "region"]),
        rows(ExperimentRollup, ["arm_id", "day", "device_type_id", "region"]),
        sorted(ExperimentEnrollment.objects.values_list("experiment_id", "device_id", "arm_id")),
    )


def test_bulk_path__equals_ingestion_for_the_same_events(owner, enrollment_key, model):
    control, challenger = ready_version(model, seed=1), ready_version(model, seed=2)
    experiment = running_experiment(model, owner, control, challenger)
    devices = enroll_devices(enrollment_key, 8)
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
    ingested = _snapshot()
    assert ingested[1] and len(ingested[2]) == 8

    DailyRollup.objects.all().delete()
    ExperimentRollup.objects.all().delete()
    ExperimentEnrollment.objects.all().delete()
    events = {
        device.pk: list(DeviceEvent.objects.filter(device=device).exclude(event_id__startswith="server:"))
        for device in devices
    }
    count_bulk(devices, events)

    assert _snapshot() == ingested
