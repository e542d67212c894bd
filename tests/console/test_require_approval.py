"""A project whose owners require approval for any change that moves devices: rules and the default version are
refused on pages and API with a message that sends the user to propose a rollout; rollouts still work."""

from __future__ import annotations

import pytest
from django.test import Client

from devices.models import TargetingRule
from devices.rules import services as rules_services
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import ready_version

pytestmark = pytest.mark.django_db

PROJECT_API = "/api/projects/kiosk/"
MODEL_API = "/api/projects/kiosk/models/digit-classifier/"
RULES_PAGE = "/p/kiosk/m/digit-classifier/delivery/"
SETTINGS_PAGE = "/p/kiosk/settings/"


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def guarded(project, model):
    version = ready_version(model)
    rule = rules_services.create_rule(model=model, version=version)
    project.require_approval = True
    project.save(update_fields=["require_approval"])
    return version, rule


def test_settings_api__owner_turns_the_flag_on_and_a_developer_may_not(project, owner, teammate):
    refused = api_client_for(teammate).patch(PROJECT_API, {"require_approval": True}, format="json")
    assert refused.status_code == 403
    project.refresh_from_db()
    assert project.require_approval is False

    answer = api_client_for(owner).patch(PROJECT_API, {"require_approval": True}, format="json")

    assert answer.status_code == 200, answer.content
    assert answer.json()["require_approval"] is True
    project.refresh_from_db()
    assert project.require_approval is True
    assert api_client_for(teammate).get(PROJECT_API).json()["require_approval"] is True


def test_settings_page__owner_sets_it_and_others_read_it(project, owner, viewer, teammate):
    assert browser(teammate).post(SETTINGS_PAGE, {"name": "x", "require_approval": "on"}).status_code == 403

    saved = browser(owner).post(SETTINGS_PAGE, {"name": "Kiosk app", "require_approval": "on"})

    assert saved.status_code == 302
    project.refresh_from_db()
    assert project.require_approval is True
    page = browser(viewer).get(SETTINGS_PAGE).content.decode()
    assert "require approval</strong>" in page
    assert 'id="settings-form"' not in page


def test_flag_on__rule_api_refuses_create_edit_and_delete_pointing_to_rollouts(guarded, teammate):
    version, rule = guarded
    client = api_client_for(teammate)

    created = client.post(MODEL_API + "rules/", {"version": 1}, format="json")
    edited = client.patch(MODEL_API + f"rules/{rule.pk}/", {"priority": 5}, format="json")
    deleted = client.delete(MODEL_API + f"rules/{rule.pk}/")

    for answer in (created, edited, deleted):
        assert answer.status_code == 400, answer.content
        assert "requires approval for any change that moves devices" in answer.json()["detail"]
        assert "Propose a rollout" in answer.json()["detail"]
    rule.refresh_from_db()
    assert rule.priority == 100
    assert TargetingRule.objects.count() == 1


def test_flag_on__default_version_refused_on_api_and_page(guarded, model, teammate):
    answer = api_client_for(teammate).put(MODEL_API + "default-version/", {"version": 1}, format="json")

    assert answer.status_code == 400
    assert "digit-classifier's default version cannot be changed directly" in answer.json()["detail"]

    page = browser(teammate).post(RULES_PAGE, {"action": "default", "default_version": "1"}, follow=True)

    assert "Propose a rollout" in page.content.decode()
    model.refresh_from_db()
    assert model.default_version is None


def test_flag_on__rule_page_says_so_and_refuses_a_new_rule(guarded, teammate):
    client = browser(teammate)
    assert 'id="approval-required"' in client.get(RULES_PAGE).content.decode()

    answer = client.post(RULES_PAGE, {"action": "create", "priority": 1, "version": 1, "bucket_by": "device_id"})

    assert answer.status_code == 200
    assert "Propose a rollout" in answer.content.decode()
    assert TargetingRule.objects.count() == 1


def test_flag_on__a_rollout_is_still_proposed(guarded, teammate):
    answer = api_client_for(teammate).post(
        MODEL_API + "rollouts/",
        {"version": 1, "stages": [{"percent": 10, "dwell_minutes": 60}, {"percent": 100, "dwell_minutes": 60}]},
        format="json",
    )

    assert answer.status_code == 201, answer.content


def test_flag_on__admin_refuses_rule_changes_and_keeps_the_default_version_read_only(guarded, model, admin_client):
    version, rule = guarded
    form = {"model": model.pk, "priority": 5, "version": version.pk, "conditions": "{}", "description": "admin"}

    added = admin_client.post("/admin/devices/targetingrule/add/", form)
    edited = admin_client.post(f"/admin/devices/targetingrule/{rule.pk}/change/", form)

    for answer in (added, edited):
        assert answer.status_code == 200
        assert "requires approval for any change that moves devices" in answer.content.decode()
    rule.refresh_from_db()
    assert (rule.priority, TargetingRule.objects.count()) == (100, 1)
    assert admin_client.post(f"/admin/devices/targetingrule/{rule.pk}/delete/", {"post": "yes"}).status_code == 403
    assert TargetingRule.objects.filter(pk=rule.pk).exists()
    page = admin_client.get(f"/admin/console/model/{model.pk}/change/").content.decode()
    assert 'name="default_version"' not in page
