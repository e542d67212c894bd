"""Helpers for the Django side of delivery: ready versions with real compatibility rows, enrolled devices."""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from console.catalog import services as catalog_services
from console.catalog.uploads import temporary_upload
from console.models import ModelVersion
from devices.core.fingerprint import config_fingerprint
from jobs.models import Job
from jobs.tasks import execute_job
from tests.conftest import make_mlp

API = "/api/device/v1"


def checked(version: ModelVersion) -> ModelVersion:
    """Run the version's real compatibility check, as the worker would."""
    job = Job.objects.get(input_version=version, kind="check")
    assert execute_job(job.pk) == "succeeded", job.error
    version.refresh_from_db()
    assert version.state == ModelVersion.State.READY
    return version


def ready_version(
    model, *, seed: int = 0, hidden: int = 16, opset: int = 17, parent: ModelVersion | None = None, transform: str = ""
) -> ModelVersion:
    """A checked version; opset 21 cannot run on raspberry-pi-4 (onnxruntime 1.16), opset 17 runs everywhere."""
    payload = make_mlp(seed=seed, hidden=hidden, opset=opset).SerializeToString()
    if parent is None:
        with temporary_upload("m.onnx", payload) as upload:
            version = catalog_services.upload_version(model=model, uploaded=upload)
    else:
        version = catalog_services.register_version(
            model=model,
            source=ContentFile(payload, name="variant.onnx"),
            sha256=hashlib.sha256(payload).hexdigest(),
            parent=parent,
            transform=transform or "convert_opset",
        )
    return checked(version)


def device_config(**overrides: Any) -> dict[str, Any]:
    config = {
        "device_type": "x86-gateway",
        "runtime": "onnxruntime",
        "runtime_version": "1.20.1",
        "os": "linux",
        "cpu_arch": "x86_64",
        "accelerator": "none",
        "memory_mb": 8192,
        "region": "DE",
        "app_version": "2.3.1",
        "attributes": {"tier": "pro", "ram_gb": 4},
    }
    config.update(overrides)
    return config


def enroll(key: str, device_id: str = "device-1", **config: Any) -> tuple[Any, dict[str, Any]]:
    """POST an enrollment; returns the response and the config sent."""
    body_config = device_config(**config)
    response = APIClient().post(
        f"{API}/enroll", {"enrollment_key": key, "device_id": device_id, "config": body_config}, format="json"
    )
    return response, body_config


def device_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    return client


def checkin(
    client: APIClient,
    config: dict[str, Any],
    models: list[str] | None = None,
    installed: dict | None = None,
    send_config: bool = False,
    **headers: Any,
):
    body: dict[str, Any] = {
        "fingerprint": config_fingerprint(config),
        "models": models or ["digit-classifier"],
        "installed": installed or {},
    }
    if send_config:
        body["config"] = config
    return client.post(f"{API}/checkin", body, format="json", **headers)
