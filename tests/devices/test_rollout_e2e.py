"""End to end: real device agents in-process against the live console, a rollout moved by the beat's engine.

A rollout runs through its stages and the share of devices on the new version follows each stage's percent;
injected download failures (the network corrupts the new version's bytes) halt it and the API says why; a retry
lets exactly the failed devices try again, past their back-off; a rollback returns every device to the
version it ran before, from the file the agent kept, without a download.
"""

from __future__ import annotations

import math
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from rest_framework.throttling import SimpleRateThrottle

from devices.agent.client import Agent, default_config
from devices.agent.transport import Stream, Transport
from devices.core.rollout_plan import in_stage
from devices.fleet import services as fleet_services
from devices.models import Rollout
from devices.rollouts import engine
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import ready_version
from tests.devices.rollout_engine_helpers import running_rollout

MODEL = "digit-classifier"
FLEET = 60

pytestmark = pytest.mark.django_db(transaction=True)


class Network(Transport):
    """The network between the agents and the console: it records which version each package download was
    for, and while ``corrupt`` names a version it flips a byte of that version's packages (the agent's sha256
    check fails: a download failure it reports and backs off from)."""

    def __init__(self) -> None:
        super().__init__(timeout_s=30.0)
        self.downloads: list[int] = []
        self.corrupt: int | None = None

    def open(self, url: str, **kwargs) -> Stream:
        stream = super().open(url, **kwargs)
        version = int(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
        self.downloads.append(version)
        return _Corrupted(stream) if version == self.corrupt else stream


class _Corrupted(Stream):
    def __init__(self, inner: Stream) -> None:
        super().__init__(inner.status, inner.headers, inner)
        self._first = True

    def read(self, size: int) -> bytes:
        chunk = super().read(size)
        if self._first and chunk:
            self._first = False
            return bytes([chunk[0] ^ 0xFF]) + chunk[1:]
        return chunk


def binomial_interval(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """The central interval holding ``confidence`` of Binomial(n, p)'s mass."""
    cdf, low, high = 0.0, None, n
    tail = (1 - confidence) / 2
    for k in range(n + 1):
        cdf += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if low is None and cdf > tail:
            low = k
        if cdf >= 1 - tail:
            high = k
            break
    return low or 0, high


@pytest.fixture
def world(live_server, project, model, tmp_path, monkeypatch):
    # A whole fleet enrolls from one address within a second: lift the per-address enrollment throttle.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"device": "600/min", "enroll": "100000/min"})
    v1 = ready_version(model, seed=1)
    v2 = ready_version(model, seed=2)
    model.default_version = v1
    model.save(update_fields=["default_version"])
    _, key = fleet_services.rotate_enrollment_key(project=project)
    network = Network()
    agents = []
    for number in range(FLEET):
        agent = Agent(tmp_path / f"device-{number}", transport=network, retry_delay_s=0)
        config = default_config(device_type="x86-gateway", region="DE", app_version="2.3.1", attributes={})
        agent.enroll(live_server.url, key, config, models=[MODEL], device_id=f"device-{number}")
        agents.append(agent)
    check_in(agents)
    assert on_version(agents) == {a.device_id for a in agents} and installed(agents) == {v1.pk}
    network.downloads.clear()
    return {"v1": v1, "v2": v2, "agents": agents, "network": network, "model": model}


def check_in(agents: list[Agent]) -> None:
    for agent in agents:
        agent.checkin()


def installed(agents: list[Agent]) -> set[int]:
    return {agent.status()["installed"][MODEL]["current"]["version_id"] for agent in agents}


def on_version(agents: list[Agent], version_id: int | None = None) -> set[str]:
    """Device ids running ``version_id`` (any version when None)."""
    running = set()
    for agent in agents:
        current = agent.status()["installed"][MODEL]["current"]
        if current and current.get("state") == "running" and version_id in (None, current["version_id"]):
            running.add(agent.device_id)
    return running


def test_rollout__moves_the_fleet_stage_by_stage_in_each_stage_s_share(world, teammate, approver):
    agents, v2 = world["agents"], world["v2"]
    stages = [
        {"percent": 10, "dwell_minutes": 30},
        {"percent": 50, "dwell_minutes": 30},
        {"percent": 100, "dwell_minutes": 30},
    ]
    rollout = running_rollout(world["model"], v2, proposer=teammate, approver=approver, stages=stages)
    now = rollout.stage_started_at
    for number, stage in enumerate(stages):
        if number:
            now += timedelta(minutes=30)
            assert engine.step_rollouts(now) == {"advance": 1}
        check_in(agents)

        updated = on_version(agents, v2.pk)
        low, high = binomial_interval(FLEET, stage["percent"] / 100)
        assert low <= len(updated) <= high, (stage, len(updated))
        assert updated == {a.device_id for a in agents if in_stage(a.device_id, rollout.salt, stage["percent"])}
    assert world["network"].downloads == [v2.pk] * FLEET  # each device downloaded the new version once

    assert engine.step_rollouts(now + timedelta(minutes=30)) == {"complete": 1}
    check_in(agents)
    assert installed(agents) == {v2.pk}


def test_download_failures__halt_the_rollout__retry_reaches_the_failed_devices__rollback_reuses_the_cached_file(
    world, teammate, approver
):
    agents, v1, v2, network = world["agents"], world["v1"], world["v2"], world["network"]
    stages = [{"percent": 25, "dwell_minutes": 30}, {"percent": 100, "dwell_minutes": 30}]
    rollout = running_rollout(
        world["model"], v2, proposer=teammate, approver=approver, stages=stages, min_devices_per_stage=5
    )
    url = f"/api/projects/kiosk/models/{MODEL}/rollouts/{rollout.pk}/"
    dev = api_client_for(teammate)
    stage = {a.device_id for a in agents if in_stage(a.device_id, rollout.salt, 25)}

    # The network corrupts version 2: every device of the stage fails and reports it; the beat halts the rollout.
    network.corrupt = v2.pk
    check_in(agents)
    assert on_version(agents, v2.pk) == set()
    assert engine.step_rollouts(rollout.stage_started_at + timedelta(minutes=1)) == {"halt": 1}
    answer = dev.get(url).json()
    failed = len(stage)
    assert answer["state"] == "halted"
    assert f"download failures 100% ({failed} of {failed}) > 5%" in answer["halt_reason"]

    # Halted: no device is offered version 2 any more, not even the failed ones (and they hold a back-off).
    network.downloads.clear()
    check_in(agents)
    assert network.downloads == [] and installed(agents) == {v1.pk}

    # Retry, the network fixed: exactly the failed devices try again at their next check-in, and succeed.
    network.corrupt = None
    retried = dev.post(url + "retry/")
    assert retried.status_code == 200 and retried.json()["retry_generation"] == 1
    check_in(agents)
    assert on_version(agents, v2.pk) == stage
    assert sorted(network.downloads) == [v2.pk] * failed

    # Roll back: every device returns to version 1, from the file it kept (no download at all).
    network.downloads.clear()
    assert dev.post(url + "rollback/").json()["state"] == "rolled_back"
    check_in(agents)
    assert installed(agents) == {v1.pk} and on_version(agents, v1.pk) == {a.device_id for a in agents}
    assert network.downloads == []
    assert [entry["outcome"] for entry in Rollout.objects.get(pk=rollout.pk).stage_history] == ["halted"]


@pytest.mark.django_db(transaction=False)
def test_retry__of_a_running_rollout_is_409_and_with_nothing_failed_is_400(model, teammate, approver):
    model.default_version = ready_version(model, seed=1)
    model.save(update_fields=["default_version"])
    rollout = running_rollout(model, ready_version(model, seed=2), proposer=teammate, approver=approver)
    url = f"/api/projects/kiosk/models/{MODEL}/rollouts/{rollout.pk}/"
    dev = api_client_for(teammate)

    running = dev.post(url + "retry/")
    assert running.status_code == 409 and "paused or halted" in running.json()["detail"]
    dev.post(url + "pause/")
    nothing = dev.post(url + "retry/")
    assert nothing.status_code == 400 and "nothing to retry" in nothing.json()["detail"]
    assert Rollout.objects.get(pk=rollout.pk).retry_generation == 0
