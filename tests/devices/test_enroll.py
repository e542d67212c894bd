"""POST /api/device/v1/enroll: keys, configuration, tokens and isolation."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from console.models import hash_token
from devices.core.fingerprint import config_fingerprint
from devices.fleet import services as fleet_services
from devices.models import Device, DeviceEvent, FleetSettings
from tests.conftest import project_device_type
from tests.devices.fleet_helpers import API, device_client, enroll

pytestmark = pytest.mark.django_db


def test_enroll__valid_key__creates_device_with_hashed_token_and_project_public_key(enrollment_key, project):
    response, config = enroll(enrollment_key, device_id="kiosk-17")

    assert response.status_code == 201, response.content
    body = response.json()
    fleet = FleetSettings.objects.get(project=project)
    assert body["device_id"] == "kiosk-17" and body["project"] == "kiosk"
    assert body["public_key"] == fleet.public_key
    assert body["checkin_interval_s"] == 300
    device = Device.objects.get(project=project, device_id="kiosk-17")
    assert device.token_hash == hash_token(body["device_token"])
    assert body["device_token"] not in str(Device.objects.filter(pk=device.pk).values().first())
    assert device.fingerprint == config_fingerprint(config)
    assert (device.device_type.slug, device.region, device.app_version) == ("x86-gateway", "DE", "2.3.1")
    assert device.attributes == {"tier": "pro", "ram_gb": 4}
    assert DeviceEvent.objects.filter(device=device, type="enrolled").count() == 1


def test_enroll__enrollment_key_is_stored_hashed_and_never_readable(enrollment_key, project):
    fleet = FleetSettings.objects.get(project=project)
    assert fleet.enrollment_key_hash == hash_token(enrollment_key)
    assert enrollment_key not in str(FleetSettings.objects.filter(pk=fleet.pk).values().first())


def test_enroll__signing_key_is_encrypted_at_rest(enrollment_key, project):
    stored = bytes(FleetSettings.objects.get(project=project).signing_key_encrypted)
    assert b"PRIVATE KEY" not in stored


def test_enroll__unknown_key__is_403_and_creates_nothing(enrollment_key):
    response, _ = enroll("enr_not-the-key")

    assert response.status_code == 403
    assert "Unknown enrollment key" in response.json()["detail"]
    assert not Device.objects.exists()


def test_enroll__rotated_key__old_one_stops_working(enrollment_key, project):
    fleet_services.rotate_enrollment_key(project=project)

    response, _ = enroll(enrollment_key)

    assert response.status_code == 403


def test_enroll__key_of_another_project__lands_there_and_cannot_use_this_projects_device_type(
    enrollment_key, project, other_project
):
    project_device_type(project, "kiosk-box")
    _, other_key = fleet_services.rotate_enrollment_key(project=other_project)

    refused, _ = enroll(other_key, device_type="kiosk-box")
    accepted, _ = enroll(other_key, device_id="device-9")

    assert refused.status_code == 400
    assert "unknown device type 'kiosk-box'" in refused.json()["detail"]
    assert accepted.status_code == 201
    assert accepted.json()["project"] == "other"
    assert accepted.json()["public_key"] == FleetSettings.objects.get(project=other_project).public_key
    assert not Device.objects.filter(project=project).exists()


def test_enroll__project_device_type__is_accepted_in_its_own_project(enrollment_key, project):
    project_device_type(project, "kiosk-box")
    response, _ = enroll(enrollment_key, device_type="kiosk-box")
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"device_type": "toaster"}, "unknown device type 'toaster'"),
        ({"region": "Germany"}, "config.region"),
        ({"region": "D1"}, "not an ISO 3166 alpha-2 code"),
        ({"app_version": "two"}, "config.app_version"),
        ({"attributes": {f"a{i}": i for i in range(33)}}, "33 attributes; at most 32"),
        ({"attributes": {"note": "x" * 257}}, "at most 256"),
        ({"attributes": {"nested": {"a": 1}}}, "must be a string, a finite number or a boolean"),
        ({"attributes": {"bad key": 1}}, "attribute name"),
        ({"memory_mb": -1}, "config.memory_mb"),
    ],
)
def test_enroll__bad_config__is_400_with_the_field_and_creates_nothing(enrollment_key, config, message):
    response, _ = enroll(enrollment_key, **config)

    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not Device.objects.exists()


def test_enroll__missing_fields__is_400_naming_them(enrollment_key):
    response = APIClient().post(
        f"{API}/enroll", {"enrollment_key": enrollment_key, "config": {"region": "DE"}}, format="json"
    )

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "device_id" in detail and "config.device_type" in detail and "config.app_version" in detail


def test_enroll__malformed_json__is_400(enrollment_key):
    response = APIClient().post(f"{API}/enroll", data=b'{"enrollment_key": ', content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


DEEP = "[" * 5000 + "]" * 5000  # 10 kB nested 5,000 levels: json.loads alone raises RecursionError


@pytest.mark.parametrize("nested", [DEEP, '{"tier": ' + "[" * 200 + "]" * 200 + "}"])
def test_enroll__body_nested_too_deep__is_400_saying_so_and_creates_nothing(enrollment_key, nested):
    body = f'{{"enrollment_key": "{enrollment_key}", "device_id": "deep-1", "config": {{"attributes": {nested}}}}}'

    response = APIClient().post(f"{API}/enroll", data=body, content_type="application/json")

    assert response.status_code == 400
    assert "levels deep" in response.json()["detail"]
    assert not Device.objects.exists()


def test_enroll__body_not_an_object__is_400(enrollment_key):
    response = APIClient().post(f"{API}/enroll", data=b"[1, 2]", content_type="application/json")
    assert response.status_code == 400
    assert "JSON object" in response.json()["detail"]


def test_enroll__oversized_body__is_413(enrollment_key):
    response, _ = enroll(enrollment_key, attributes={"pad": "x"}, padding="y" * 70_000)
    assert response.status_code == 413
    assert "at most 65536" in response.json()["detail"]


def test_enroll__same_device_again__gets_a_new_token_and_the_old_one_dies(enrollment_key, enrolled):
    device, old_token, config = enrolled

    response, _ = enroll(enrollment_key, region="FR")

    assert response.status_code == 201
    new_token = response.json()["device_token"]
    assert new_token != old_token
    assert Device.objects.filter(device_id="device-1").count() == 1
    assert device_client(old_token).post(f"{API}/checkin", {"fingerprint": "0" * 64}, format="json").status_code == 401
    device.refresh_from_db()
    assert device.region == "FR"


def test_enroll__revoked_device__cannot_enroll_again(enrollment_key, enrolled):
    device, _, _ = enrolled
    fleet_services.revoke_device(device=device)

    response, _ = enroll(enrollment_key)

    assert response.status_code == 403
    assert "revoked" in response.json()["detail"]


def test_enroll__is_throttled_per_address(enrollment_key, monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"device": "600/min", "enroll": "2/min"})

    statuses = [enroll(enrollment_key, device_id=f"d{i}")[0].status_code for i in range(3)]

    assert statuses == [201, 201, 429]
