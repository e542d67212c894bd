"""End to end: the real device agent against the real console (live server), then the console's view of it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.test import Client

from devices.agent.client import Agent, default_config
from devices.agent.simulate import FlakyTransport
from devices.core.signing import verify_manifest
from devices.fleet import services as fleet_services
from devices.models import DailyRollup, DeviceEvent, DeviceModelState, FleetSettings
from devices.rules import services as rules_services
from tests.devices.fleet_helpers import ready_version

MODEL = "digit-classifier"


class FirstDownloadBreaks(FlakyTransport):
    """Breaks the first package download halfway (then the agent must resume); records each download status."""

    def __init__(self, base_url: str) -> None:
        draws = iter([0.0])  # the first draw is below the fail rate, every later one is not
        rng = type("Draws", (), {"random": staticmethod(lambda: next(draws, 1.0))})()
        super().__init__(base_url, fail_rate=0.5, rng=rng)
        self.statuses: list[int] = []

    def open(self, url, **kwargs):
        stream = super().open(url, **kwargs)
        self.statuses.append(stream.status)
        return stream


@pytest.mark.django_db(transaction=True)
def test_agent__enrolls_checks_in_resumes_download_verifies_reports_and_console_shows_it(
    live_server, owner, project, model, tmp_path
):
    version = ready_version(model)
    rules_services.create_rule(model=model, version=version, conditions={"regions": ["DE"]})
    _, key = fleet_services.rotate_enrollment_key(project=project)
    transport = FirstDownloadBreaks(live_server.url)
    agent = Agent(tmp_path / "device", transport=transport, retry_delay_s=0)

    agent.enroll(
        live_server.url,
        key,
        default_config(device_type="x86-gateway", region="DE", app_version="2.3.1", attributes={"tier": "pro"}),
        models=[MODEL],
    )
    first = agent.checkin()

    assert first.models[MODEL] == f"installed version {version.pk}"
    assert transport.statuses == [200, 206]  # broken halfway, then resumed with a Range request
    manifest = agent.status()["installed"][MODEL]["current"]
    assert manifest["sha256"] == version.sha256
    state = json.loads((tmp_path / "device" / "state.json").read_text())
    assert state["public_key"] == FleetSettings.objects.get(project=project).public_key
    assert verify_manifest(state["public_key"], state["last_answer"]["models"][MODEL]["manifest"])

    for _ in range(3):
        agent.run(MODEL, {"x": np.zeros((1, 8), dtype=np.float32)})
    second = agent.checkin()

    assert second.http_status == 304  # nothing changed: the assignment is installed
    types = list(DeviceEvent.objects.filter(device__device_id=agent.device_id).values_list("type", flat=True))
    assert {"download_started", "download_completed", "install_succeeded", "inference_stats"} <= set(types)
    rollup = DailyRollup.objects.get(version=version)
    assert (rollup.download_completed, rollup.install_succeeded, rollup.inference_count) == (1, 1, 3)
    state = DeviceModelState.objects.get(device__device_id=agent.device_id)
    assert (state.desired_version, state.installed_version, state.up_to_date) == (version, version, True)

    console = Client()
    console.force_login(owner)
    fleet = console.get("/p/kiosk/fleet/").content.decode()
    assert agent.device_id in fleet and "up to date" in fleet
    detail = console.get(f"/p/kiosk/fleet/{agent.device_id}/").content.decode()
    assert "Install succeeded" in detail and f"v{version.number}" in detail
