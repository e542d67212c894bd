"""A small demo fleet made in-process for ``seed_demo``, so a fresh console opens on devices, desired vs
installed versions and download/install/inference figures rather than on empty pages.

It goes through the same services and serializers as the device API (enroll, check in, report events,
check in again with what was installed); no HTTP server is needed. For load, or for real agents against
a running console, use ``python -m devices.agent.simulate``.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from console.models import Model, Project
from devices.agent.simulate import DEFAULT_APP_VERSIONS, DEFAULT_REGIONS
from devices.catalog.builtin import BUILTIN_DEVICE_TYPE_SLUGS, DEVICE_REPORTS
from devices.delivery.checkin import CheckinRequest, answer_checkin
from devices.delivery.serializers import DeviceConfigSerializer
from devices.fleet import services as fleet_services
from devices.models import DeviceType
from devices.telemetry import events as telemetry_events
from devices.telemetry.serializers import EventBatchSerializer


def demo_config(index: int, rng: random.Random) -> dict[str, Any]:
    """Demo device ``index``: the built-in types in turn, each reporting what such a device does."""
    device_type = BUILTIN_DEVICE_TYPE_SLUGS[index % len(BUILTIN_DEVICE_TYPE_SLUGS)]
    return {
        "device_type": device_type,
        "runtime": "onnxruntime",
        **DEVICE_REPORTS[device_type],
        "memory_mb": rng.choice([2048, 4096, 8192]),
        "region": DEFAULT_REGIONS[index % len(DEFAULT_REGIONS)],
        "app_version": rng.choice(DEFAULT_APP_VERSIONS),
        "attributes": {"tier": rng.choice(["free", "pro"])},
    }


def _event(event_type: str, model: str, version_id: int, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "model": model,
        "version_id": version_id,
        "at": at.isoformat(),
        **extra,
    }


def seed_demo_fleet(*, project: Project, model: Model, count: int = 24, seed: int = 7) -> int:
    """Enroll ``count`` demo devices that check in for ``model``, download and install what they are
    assigned (a few after a failed first try) and report inference figures. Returns how many were enrolled;
    0 when the project has devices already."""
    if project.devices.exists():
        return 0
    rng = random.Random(seed)
    fleet = fleet_services.fleet_settings_for(project)
    now = timezone.now()
    for index in range(count):
        config = DeviceConfigSerializer(data=demo_config(index, rng))
        config.is_valid(raise_exception=True)
        slug = config.validated_data["device_type"]
        device_type = fleet_services.device_type_for(project.pk, slug)
        if device_type is None:  # demo_config picks built-in types: a migration creates them, but staff may delete one
            raise DeviceType.DoesNotExist(f"built-in device type {slug!r} is gone; the demo fleet uses every one")
        device, token = fleet_services.enroll_device(
            fleet=fleet,
            device_id=f"demo-{index:02d}",
            config=config.validated_data,
            device_type=device_type,
            now=now - timedelta(hours=6),
        )
        first = CheckinRequest(fingerprint=device.fingerprint, models=[model.name], installed={})
        answer = answer_checkin(first, token=token, now=now - timedelta(hours=5))
        assert answer.body is not None  # only a 304 has no body, and a check-in without If-None-Match gets none
        manifest = answer.body["models"][model.name].get("manifest")
        if not manifest:
            continue  # nothing this device type can run: the fleet page shows why
        at = now - timedelta(hours=5) + timedelta(minutes=index)
        events = [_event("download_started", model.name, manifest["version_id"], at)]
        if index % 7 == 3:
            events += [
                _event(
                    "download_failed",
                    model.name,
                    manifest["version_id"],
                    at + timedelta(seconds=20),
                    reason="connection reset after 41% (resumed at the next check-in)",
                ),
                _event("download_started", model.name, manifest["version_id"], at + timedelta(minutes=5)),
            ]
        events += [
            _event("download_completed", model.name, manifest["version_id"], at + timedelta(minutes=6)),
            _event("install_succeeded", model.name, manifest["version_id"], at + timedelta(minutes=6, seconds=2)),
            _event(
                "inference_stats",
                model.name,
                manifest["version_id"],
                now - timedelta(minutes=30),
                stats={
                    "count": rng.randint(200, 2000),
                    "latency_ms_p50": round(rng.uniform(0.2, 2.5), 2),
                    "latency_ms_p90": round(rng.uniform(2.5, 6.0), 2),
                    "accuracy": round(rng.uniform(0.95, 0.99), 3),
                },
            ),
        ]
        batch = EventBatchSerializer(data={"events": events})
        batch.is_valid(raise_exception=True)
        telemetry_events.record_events(
            device=device, events=batch.validated_data["events"], now=now - timedelta(hours=1)
        )
        installed = {
            model.name: {"version_id": manifest["version_id"], "sha256": manifest["sha256"], "state": "running"}
        }
        answer_checkin(
            CheckinRequest(fingerprint=device.fingerprint, models=[model.name], installed=installed),
            token=token,
            now=now - timedelta(minutes=rng.randint(1, 50)),
        )
    return count
