"""Developer API for fleet settings, enrollment keys and devices."""

from __future__ import annotations

import pytest

from devices.models import DeviceEvent
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import checkin, device_client, enroll, ready_version

pytestmark = pytest.mark.django_db

FLEET = "/api/projects/kiosk/fleet/"
DEVICES = "/api/projects/kiosk/devices/"


def test_enrollment_key__owner_rotates_it_and_sees_it_once(owner, project):
    client = api_client_for(owner)

    issued = client.post(f"{FLEET}enrollment-key/")

    assert issued.status_code == 201
    raw = issued.json()["enrollment_key"]
    assert enroll(raw)[0].status_code == 201
    settings = client.get(FLEET).json()
    assert settings["has_enrollment_key"] is True
    assert raw not in str(settings) and raw.startswith(settings["enrollment_key_prefix"])
    assert "signing" not in str(settings) and "PRIVATE" not in str(settings)


@pytest.mark.parametrize(("persona", "status"), [("teammate", 403), ("viewer", 403), ("outsider", 404)])
def test_enrollment_key__only_owners_rotate_it(request, project, persona, status):
    response = api_client_for(request.getfixturevalue(persona)).post(f"{FLEET}enrollment-key/")
    assert response.status_code == status


def test_fleet_settings__owner_sets_the_checkin_interval(owner, project):
    response = api_client_for(owner).patch(FLEET, {"checkin_interval_s": 60}, format="json")
    assert (response.status_code, response.json()["checkin_interval_s"]) == (200, 60)
    assert api_client_for(owner).patch(FLEET, {"checkin_interval_s": 0}, format="json").status_code == 400


def test_devices__list_filters_and_shows_desired_vs_installed(teammate, enrollment_key, model):
    from devices.rules import services as rules_services

    v1 = ready_version(model)
    rules_services.create_rule(model=model, version=v1)
    response, config = enroll(enrollment_key, device_id="kiosk-de")
    enroll(enrollment_key, device_id="kiosk-fr", region="FR")
    checkin(device_client(response.json()["device_token"]), config)
    client = api_client_for(teammate)

    listed = client.get(DEVICES, {"region": "de"}).json()["results"]

    assert [d["device_id"] for d in listed] == ["kiosk-de"]
    assert listed[0]["models"][0]["desired_version"] == 1
    assert listed[0]["models"][0]["installed_version"] is None
    assert [
        d["device_id"]
        for d in client.get(DEVICES, {"model": "digit-classifier", "delivery": "behind"}).json()["results"]
    ] == ["kiosk-de"]
    assert client.get(DEVICES, {"last_seen": "sometime"}).status_code == 400
    assert client.get(DEVICES, {"version": 1}).status_code == 400


def test_devices__list_has_no_n_plus_one(teammate, enrollment_key, django_assert_max_num_queries):
    for index in range(12):
        enroll(enrollment_key, device_id=f"d{index}")
    with django_assert_max_num_queries(6):
        assert len(api_client_for(teammate).get(DEVICES).json()["results"]) == 12


def test_devices__developer_revokes_a_device_and_its_token_dies(teammate, enrolled):
    device, token, config = enrolled

    response = api_client_for(teammate).post(f"{DEVICES}device-1/revoke/")

    assert (response.status_code, response.json()["revoked"]) == (200, True)
    assert checkin(device_client(token), config).status_code == 401
    assert DeviceEvent.objects.filter(device=device, type="revoked").exists()


def test_devices__viewer_cannot_revoke_and_outsider_sees_nothing(viewer, outsider, enrolled):
    assert api_client_for(viewer).post(f"{DEVICES}device-1/revoke/").status_code == 403
    assert api_client_for(outsider).get(f"{DEVICES}device-1/").status_code == 404
    assert api_client_for(outsider).get(DEVICES).status_code == 404


def test_devices__device_of_another_project__is_404(teammate, other_project):
    from devices.fleet import services as fleet_services

    _, other_key = fleet_services.rotate_enrollment_key(project=other_project)
    enroll(other_key, device_id="theirs")

    assert api_client_for(teammate).get(f"{DEVICES}theirs/").status_code == 404


def test_devices__own_checkin_interval_and_history(teammate, enrolled):
    client = api_client_for(teammate)

    assert (
        client.patch(f"{DEVICES}device-1/", {"checkin_interval_s": 45}, format="json").json()["checkin_interval_s"]
        == 45
    )
    events = client.get(f"{DEVICES}device-1/events/").json()["results"]
    assert [e["type"] for e in events] == ["enrolled"]
