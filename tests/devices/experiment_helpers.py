"""Helpers for experiment tests: a running two-arm experiment, enrolled devices, and their arms."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from devices.core.experiment_assign import IN_ARM, assign
from devices.delivery.cache import running_experiments
from devices.delivery.serializers import DeviceConfigSerializer
from devices.experiments import services
from devices.fleet import services as fleet_services
from devices.models import Device, Experiment
from devices.telemetry import experiment_rollups
from tests.devices.fleet_helpers import device_config


def running_experiment(model, user, control, challenger, **fields: Any) -> Experiment:
    values: dict[str, Any] = {
        "name": "ab",
        "traffic_percent": 100,
        "primary_metric": "latency",
        "guardrail_metrics": ["accuracy"],
        "target": {"device_types": ["x86-gateway"]},
        **fields,
    }
    share = values["traffic_percent"] / 2
    experiment = services.create_experiment(
        model=model,
        user=user,
        arms=[services.ArmSpec(control, share), services.ArmSpec(challenger, share)],
        **values,
    )
    return services.start_experiment(experiment=experiment, user=user)


def enroll_devices(key: str, n: int, prefix: str = "dev", **config: Any) -> list[Device]:
    """``n`` devices enrolled with ``key`` (through the enrollment service: the HTTP endpoint is throttled)."""
    fleet = fleet_services.fleet_for_enrollment_key(key)
    assert fleet is not None
    for i in range(n):
        checked = DeviceConfigSerializer(data=device_config(**config))
        checked.is_valid(raise_exception=True)
        sent = checked.validated_data
        device_type = fleet_services.device_type_for(fleet.project_id, sent["device_type"])
        fleet_services.enroll_device(fleet=fleet, device_id=f"{prefix}-{i}", config=sent, device_type=device_type)
    return list(Device.objects.filter(device_id__startswith=f"{prefix}-").select_related("device_type").order_by("pk"))


def arm_of(experiment: Experiment, device: Device):
    """The arm (ArmPlan) the pure assignment puts ``device`` in, or None."""
    plan = next(p for p in running_experiments([experiment.model_id])[experiment.model_id] if p.id == experiment.pk)
    found = assign(plan, experiment_rollups.device_config(device), lambda version_id: True)
    return found.arm if found.state == IN_ARM else None


def event(kind: str, model: str, version_id: int | None, at: datetime, **stats: Any) -> dict[str, Any]:
    """An event as the batch serializer hands it to record_events."""
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "model": model,
        "version_id": version_id,
        "at": at,
        "reason": "",
        "stats": stats,
    }
