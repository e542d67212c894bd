"""Fleet, device and rules pages in the browser's shape (server-rendered forms)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from devices.models import Device, TargetingRule
from devices.rules import services as rules_services
from tests.devices.fleet_helpers import API, checkin, device_client, enroll

pytestmark = pytest.mark.django_db

FLEET = "/p/kiosk/fleet/"
RULES = "/p/kiosk/m/digit-classifier/delivery/"


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_fleet_page__owner_issues_an_enrollment_key_shown_once(owner, project):
    client = browser(owner)

    page = client.post(FLEET, {"action": "rotate_key"})

    assert page.status_code == 200
    raw = page.context["new_key"]
    assert raw in page.content.decode()
    assert enroll(raw)[0].status_code == 201
    assert raw not in client.get(FLEET).content.decode()


def test_fleet_page__developer_cannot_rotate_the_key_and_outsider_sees_nothing(teammate, outsider, project):
    assert browser(teammate).post(FLEET, {"action": "rotate_key"}).status_code == 403
    assert browser(outsider).get(FLEET).status_code == 404


def test_fleet_page__filters_and_shows_desired_vs_installed(viewer, enrollment_key, model, ready_v1):
    rules_services.create_rule(model=model, version=ready_v1)
    response, config = enroll(enrollment_key, device_id="kiosk-de")
    enroll(enrollment_key, device_id="kiosk-fr", region="FR", device_type="raspberry-pi-4")
    installed = {"digit-classifier": {"version_id": ready_v1.pk, "sha256": ready_v1.sha256, "state": "running"}}
    checkin(device_client(response.json()["device_token"]), config, installed=installed)
    client = browser(viewer)

    page = client.get(FLEET, {"region": "DE"}).content.decode()
    assert "kiosk-de" in page and "kiosk-fr" not in page
    assert "up to date" in page
    page = client.get(FLEET, {"device_type": "raspberry-pi-4"}).content.decode()
    assert "kiosk-fr" in page and "kiosk-de" not in page
    assert "last_seen" in client.get(FLEET, {"last_seen": "never-ever"}).content.decode()


def test_fleet_page__query_count_does_not_grow_with_the_fleet(
    viewer, enrollment_key, model, ready_v1, django_assert_max_num_queries
):
    rules_services.create_rule(model=model, version=ready_v1)
    for index in range(25):
        response, config = enroll(enrollment_key, device_id=f"d{index:02d}")
        checkin(device_client(response.json()["device_token"]), config)
    client = browser(viewer)

    with django_assert_max_num_queries(16):
        page = client.get(FLEET)
    assert page.content.decode().count("desired v1") == 25


def test_device_page__shows_history_and_a_developer_revokes(teammate, enrolled, model, ready_v1):
    device, token, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    checkin(device_client(token), config)
    device_client(token).post(
        f"{API}/events",
        {
            "events": [
                {
                    "id": "e1",
                    "type": "download_failed",
                    "model": "digit-classifier",
                    "version_id": ready_v1.pk,
                    "at": timezone.now().isoformat(),
                    "reason": "connection reset",
                }
            ]
        },
        format="json",
    )
    client = browser(teammate)

    page = client.get(f"{FLEET}device-1/").content.decode()
    assert "connection reset" in page and "Assignment changed" in page and "Enrolled" in page

    client.post(f"{FLEET}device-1/", {"action": "revoke"})
    assert Device.objects.get(pk=device.pk).revoked_at is not None
    assert checkin(device_client(token), config).status_code == 401


def test_device_page__viewer_cannot_revoke(viewer, enrolled):
    assert browser(viewer).post(f"{FLEET}device-1/", {"action": "revoke"}).status_code == 403
    assert Device.objects.get(device_id="device-1").revoked_at is None


def test_rules_page__developer_adds_a_rule_from_the_form(teammate, ready_v1):
    client = browser(teammate)

    response = client.post(
        RULES,
        {
            "action": "create",
            "priority": "10",
            "version": "1",
            "device_types": ["x86-gateway"],
            "regions": "de, fr",
            "app_version": ">=2.3",
            "attributes": 'tier eq "pro"\nram_gb gte 4',
            "percentage": "50",
            "bucket_by": "device_id",
            "salt": "",
            "description": "pro gateways",
        },
    )

    assert response.status_code == 302
    rule = TargetingRule.objects.get()
    assert rule.conditions["regions"] == ["DE", "FR"]
    assert rule.conditions["attributes"] == [
        {"key": "tier", "op": "eq", "value": "pro"},
        {"key": "ram_gb", "op": "gte", "value": 4},
    ]
    assert rule.conditions["percentage"] == 50


def test_rules_page__invalid_rule__shows_why_and_saves_nothing(teammate, ready_v1):
    page = browser(teammate).post(
        RULES, {"action": "create", "priority": "10", "version": "1", "regions": "Germany", "attributes": "tier"}
    )

    text = page.content.decode()
    assert page.status_code == 200
    assert "line 1: write key op value" in text
    assert not TargetingRule.objects.exists()


def test_rules_page__marks_shadowed_rules_and_previews_a_sample_device(viewer, model, ready_v1, enrollment_key):
    everyone = rules_services.create_rule(model=model, version=ready_v1, priority=1)
    rules_services.create_rule(model=model, version=ready_v1, priority=2, conditions={"regions": ["FR"]})
    enroll(enrollment_key)

    page = browser(viewer).get(
        RULES,
        {
            "preview": "1",
            "device_type": "x86-gateway",
            "region": "DE",
            "app_version": "2.3.1",
            "attributes": '{"tier": "pro"}',
        },
    )

    text = page.content.decode()
    assert f"shadowed by rule {everyone.pk}" in text
    assert page.context["explanation"]["status"] == "assigned"
    assert page.context["counts"].wins[everyone.pk] == 1


def test_rule_page__developer_edits_and_deletes(teammate, model, ready_v1):
    rule = rules_services.create_rule(model=model, version=ready_v1, conditions={"regions": ["DE"]})
    client = browser(teammate)
    url = f"{RULES}rules/{rule.pk}/"
    assert 'value="DE"' in client.get(url).content.decode()

    client.post(url, {"action": "save", "priority": "3", "version": "1", "regions": "IT", "bucket_by": "device_id"})
    rule.refresh_from_db()
    assert (rule.priority, rule.conditions["regions"]) == (3, ["IT"])

    client.post(url, {"action": "delete"})
    assert not TargetingRule.objects.exists()


def test_rules_page__default_version_and_funnel_chart(teammate, enrolled, model, ready_v1):
    _, token, _ = enrolled
    client = browser(teammate)
    client.post(RULES, {"action": "default", "default_version": "1"})
    model.refresh_from_db()
    assert model.default_version == ready_v1
    device_client(token).post(
        f"{API}/events",
        {
            "events": [
                {
                    "id": "e1",
                    "type": "download_started",
                    "model": "digit-classifier",
                    "version_id": ready_v1.pk,
                    "at": (timezone.now() + timedelta(minutes=5)).isoformat(),
                }
            ]
        },
        format="json",
    )  # a clock a little ahead

    text = client.get(RULES).content.decode()

    assert "/static/vendor/plotly/plotly-basic.min." in text
    assert '"label": "digit-classifier v1"' in text
