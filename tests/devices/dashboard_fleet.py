"""A small fleet seeded through the real paths (enroll, check-in offers, device event batches) for dashboards."""

from __future__ import annotations

import uuid
from datetime import timedelta

from console.models import ModelVersion
from devices.fleet import services as fleet_services
from devices.models import Device, DeviceEvent, DeviceModelState
from devices.rules import services as rules_services
from devices.telemetry.events import record_events
from tests.devices.fleet_helpers import checkin, device_client, enroll, ready_version

SERVER_LATENCY_MS = 2.0
DEVICES = [  # device id, type, region, app version
    ("kiosk-de", "x86-gateway", "DE", "2.3.1"),
    ("pi-fr", "raspberry-pi-4", "FR", "2.3.1"),
    ("kiosk-fr", "x86-gateway", "FR", "3.0.0"),
]


def _report(device, now, *events):
    batch = [{"id": uuid.uuid4().hex, "model": "digit-classifier", "reason": "", "stats": {}, **e} for e in events]
    record_events(device=device, events=batch, now=now)


def seed_dashboard_fleet(project, model) -> dict:
    """v1 (server benchmark 2 ms) with a child v2; three devices offered v1: kiosk-de installs it 10 minutes
    after the offer and reports 4 ms, pi-fr fails its checksum, kiosk-fr's download breaks (network); the
    offers are dated 2 hours back, so the two that did not install are stuck."""
    v1 = ready_version(model)
    v2 = ready_version(model, seed=1, parent=v1, transform="convert_opset")
    ModelVersion.objects.filter(pk=v1.pk).update(
        metrics={"benchmark": {"latency_1_thread": {"median_ms": SERVER_LATENCY_MS}, "download_bytes": 900}}
    )
    rules_services.create_rule(model=model, version=v1)
    _, key = fleet_services.rotate_enrollment_key(project=project)
    clients = {}
    for device_id, device_type, region, app in DEVICES:
        response, config = enroll(key, device_id=device_id, device_type=device_type, region=region, app_version=app)
        clients[device_id] = (device_client(response.json()["device_token"]), config)
        assert checkin(*clients[device_id]).status_code == 200
    offer_at = DeviceEvent.objects.filter(type="assignment_changed").latest("at").at
    devices = {d.device_id: d for d in Device.objects.filter(project=project)}
    installed_at = offer_at + timedelta(minutes=10)
    _report(
        devices["kiosk-de"],
        installed_at,
        {"type": "download_started", "version_id": v1.pk, "at": offer_at},
        {"type": "download_completed", "version_id": v1.pk, "at": installed_at},
        {"type": "install_succeeded", "version_id": v1.pk, "at": installed_at},
        {
            "type": "inference_stats",
            "version_id": v1.pk,
            "at": installed_at,
            "stats": {"count": 50, "latency_ms_p50": 4.0},
        },
    )
    _report(
        devices["pi-fr"],
        installed_at,
        {"type": "download_started", "version_id": v1.pk, "at": offer_at},
        {
            "type": "download_failed",
            "version_id": v1.pk,
            "at": offer_at,
            "reason": "sha256 mismatch: got 1, manifest says 2",
        },
    )
    _report(
        devices["kiosk-fr"],
        installed_at,
        {"type": "download_started", "version_id": v1.pk, "at": offer_at},
        {
            "type": "download_failed",
            "version_id": v1.pk,
            "at": offer_at,
            "reason": "download incomplete after 3 attempts",
        },
    )
    installed = {"digit-classifier": {"version_id": v1.pk, "sha256": v1.sha256, "state": "running"}}
    assert checkin(*clients["kiosk-de"], installed=installed).status_code == 200
    DeviceModelState.objects.update(resolved_at=offer_at - timedelta(hours=2))
    return {"v1": v1, "v2": v2, "devices": devices}
