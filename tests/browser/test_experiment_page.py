"""The experiment dashboard draws the server's figures: each arm's line with its points, per day."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from devices.fleet import services as fleet_services
from devices.models import DeviceEvent
from devices.telemetry.bulk import count_bulk
from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD
from tests.devices.experiment_helpers import arm_of, enroll_devices, running_experiment
from tests.devices.fleet_helpers import ready_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DAYS = 5


def test_experiment_page__plots_carry_every_arm_and_a_point_per_day(browser_page, live_server, project, model, owner):
    control, challenger = ready_version(model, seed=1), ready_version(model, seed=2)
    experiment = running_experiment(model, owner, control, challenger, sequential=False)
    _, key = fleet_services.rotate_enrollment_key(project=project)
    devices = enroll_devices(key, 12)
    rng = np.random.default_rng(3)
    now = timezone.now()
    events = {}
    for device in devices:
        version_id = arm_of(experiment, device).version_id
        mean = 20.0 if version_id == control.pk else 17.0
        events[device.pk] = [
            DeviceEvent(
                type="inference_stats",
                model_id=model.pk,
                version_id=version_id,
                at=now - timedelta(days=day),
                received_at=now,
                stats={"count": 50, "latency_ms_mean": float(rng.normal(mean, 2.0))},
            )
            for day in range(DAYS)
        ]
    count_bulk(devices, events)

    page = browser_page
    url = f"/p/{project.slug}/m/{model.name}/experiments/{experiment.pk}/"
    page.goto(f"{live_server.url}/login/?next={url}")
    page.fill("#id_username", owner.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#chart-latency .main-svg")
    traces = page.evaluate(
        "() => document.getElementById('chart-latency').data.map(t => ({name: t.name, mode: t.mode || '', x: t.x}))"
    )
    lines = [t for t in traces if "lines" in t["mode"]]
    assert [t["name"] for t in lines] == ["v1 (control)", "v2"]
    assert all(len(t["x"]) == DAYS for t in lines)
    assert "faster than v1" in page.inner_text("#verdict")
    page.screenshot(path=str(ARTIFACTS / "experiment-dashboard.png"), full_page=True)
