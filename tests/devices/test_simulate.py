from __future__ import annotations

import random

import pytest

from devices.agent.errors import TransportError
from devices.agent.simulate import FlakyTransport, FleetProfile, main, simulate
from tests.devices.fake_device_server import FakeDeviceServer, FakeVersion


def test_simulate__enrolls_a_mixed_fleet_installs_and_reports_injected_failures(
    server: FakeDeviceServer, v1: FakeVersion
) -> None:
    server.assign(v1)
    profile = FleetProfile(device_types=("phone", "kiosk"), regions=("DE", "FR"), attributes={"tier": ("free", "pro")})

    report = simulate(
        server.url,
        server.enrollment_key,
        devices=6,
        fail_rate=0.5,
        duration_s=2.5,
        interval_s=0.3,
        infer_runs=2,
        profile=profile,
        seed=3,
    )

    assert report.enrolled == 6
    assert report.checkin_errors == 0, report.errors
    assert report.injected_failures >= 1
    assert report.download_failures >= 1
    assert report.installed_versions == {"digit-classifier": {"1": 6}}
    assert report.inferences >= 6
    configs = [device["config"] for device in server.devices.values()]
    assert {c["device_type"] for c in configs} <= {"phone", "kiosk"}
    assert {c["region"] for c in configs} <= {"DE", "FR"}
    assert all(set(c["attributes"]) == {"tier"} for c in configs)
    event_types = {event["type"] for event in server.events.values()}
    assert {"download_failed", "install_succeeded", "inference_stats"} <= event_types
    resumed = [d for d in server.downloads if d["status"] == 206]
    assert resumed, "a broken download should have been resumed with a Range request"


def test_simulate__refuses_a_remote_server_without_allow_remote() -> None:
    with pytest.raises(ValueError, match="--allow-remote"):
        simulate("http://console.example.com", "key", devices=1, duration_s=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"devices": 0}, "devices"),
        ({"devices": 100_000}, "devices"),
        ({"duration_s": 7200}, "duration"),
        ({"fail_rate": 1.5}, "fail rate"),
    ],
)
def test_simulate__is_bounded_in_count_and_time(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate("http://127.0.0.1:9", "key", **{"devices": 1, "duration_s": 1, **kwargs})


def test_flaky_transport__only_talks_to_the_server_under_test() -> None:
    transport = FlakyTransport("http://127.0.0.1:8000", 0.0, random.Random(0))
    with pytest.raises(TransportError, match="refuses"):
        transport.open("http://127.0.0.1:9000/file")


def test_cli__rejects_a_remote_url(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--url", "http://10.1.2.3:8000", "--key", "k", "--devices", "1", "--duration", "1"])
    assert exit_info.value.code == 2
    assert "--allow-remote" in capsys.readouterr().err


@pytest.mark.django_db
def test_default_fleet__uses_the_device_types_the_console_has_built_in() -> None:
    from devices.models import DeviceType

    builtin = DeviceType.objects.filter(project=None).values_list("slug", flat=True)

    assert sorted(FleetProfile().device_types) == sorted(builtin)


def test_cli__is_named_after_its_module(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m devices.agent.simulate")
