"""What a new user stumbled on: the fleet page's key sentence, a device's reason, the admin for non-staff."""

from __future__ import annotations

import pytest
from django.test import Client

from devices.fleet import services as fleet_services
from devices.models import DeviceModelState, FleetSettings
from tests.devices.fleet_helpers import checkin, device_client, enroll

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_fleet_page__devices_enrolled_but_no_active_key__says_they_used_an_earlier_key(owner, project):
    _, key = fleet_services.rotate_enrollment_key(project=project)
    enroll(key, device_id="kiosk-1")
    FleetSettings.objects.filter(project=project).update(enrollment_key_hash=None)

    body = browser(owner).get("/p/kiosk/fleet/").content.decode()

    assert "enrolled with an earlier key" in body
    assert "No enrollment key yet" not in body


def test_fleet_page__no_device_and_no_key__says_devices_cannot_enroll_yet(owner, project):
    assert "No enrollment key yet" in browser(owner).get("/p/kiosk/fleet/").content.decode()


def test_fleet_page__device_with_nothing_to_run__shows_the_reason_the_device_page_gives(owner, project, model):
    _, key = fleet_services.rotate_enrollment_key(project=project)
    response, config = enroll(key, device_id="android-1", device_type="android-arm64-phone")
    checkin(device_client(response.json()["device_token"]), config)
    state = DeviceModelState.objects.get(device__device_id="android-1")
    assert state.desired_version is None and state.reason

    body = browser(owner).get("/p/kiosk/fleet/").content.decode()

    assert state.reason in body


def test_admin__signed_in_member_who_is_not_staff__gets_not_allowed_not_a_sign_in_form(teammate):
    response = browser(teammate).get("/admin/", follow=True)

    assert response.status_code == 403
    body = response.content.decode()
    assert "the admin is for the console&#x27;s staff only" in body
    assert 'name="password"' not in body


def test_admin__anonymous__still_gets_the_admin_sign_in_form():
    response = Client().get("/admin/", follow=True)

    assert response.status_code == 200
    assert 'name="password"' in response.content.decode()
