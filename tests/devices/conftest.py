from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devices.agent.client import Agent, default_config
from tests.devices.fake_device_server import MODEL, FakeDeviceServer, FakeVersion, make_model_bytes

VECTORS_PATH = Path(__file__).with_name("bucketing_vectors.json")


@pytest.fixture
def bucketing_vectors() -> list[dict[str, Any]]:
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


@pytest.fixture
def server() -> Iterator[FakeDeviceServer]:
    with FakeDeviceServer() as fake:
        yield fake


@pytest.fixture
def v1() -> FakeVersion:
    return FakeVersion(1, "1.0.0", make_model_bytes(1.0))


@pytest.fixture
def v2() -> FakeVersion:
    return FakeVersion(2, "1.1.0", make_model_bytes(2.0))


@pytest.fixture
def make_agent(tmp_path: Path) -> Callable[..., Agent]:
    """A fresh agent on ``tmp_path/name``; calling it again with the same name is a restarted agent."""

    def make(name: str = "device", **kwargs: Any) -> Agent:
        kwargs.setdefault("retry_delay_s", 0)
        return Agent(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def enrolled_agent(server: FakeDeviceServer, make_agent: Callable[..., Agent]) -> Agent:
    agent = make_agent()
    config = default_config(device_type="kiosk-x86", region="DE", app_version="2.3.1", attributes={"tier": "pro"})
    agent.enroll(server.url, server.enrollment_key, config, models=[MODEL])
    return agent


# --- the Django side of delivery ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_delivery_caches(settings) -> Iterator[None]:
    """Plans, throttles and last-seen notes are per process: start every test from scratch."""
    from django.core.cache import cache

    from devices.delivery import cache as plans
    from devices.delivery import presence

    settings.DEVICE_LAST_SEEN_FLUSH_S = 0
    plans.clear_cache()
    presence.forget()
    cache.clear()
    yield
    plans.clear_cache()
    presence.forget()


@pytest.fixture
def enrollment_key(project) -> str:
    from devices.fleet import services as fleet_services

    _, raw = fleet_services.rotate_enrollment_key(project=project)
    return raw


@pytest.fixture
def enrolled(enrollment_key, model):
    """A device enrolled in ``project`` (x86-gateway, DE, app 2.3.1): (device row, token, config)."""
    from devices.models import Device
    from tests.devices.fleet_helpers import enroll

    response, config = enroll(enrollment_key)
    assert response.status_code == 201, response.content
    return Device.objects.get(device_id="device-1"), response.json()["device_token"], config


@pytest.fixture
def ready_v1(model):
    """Version 1 of ``model``, checked (ready): every built-in device type can run it."""
    from tests.devices.fleet_helpers import ready_version

    return ready_version(model)


@pytest.fixture
def device_api(enrolled):
    """An API client authenticated as the enrolled device."""
    from tests.devices.fleet_helpers import device_client

    return device_client(enrolled[1])
