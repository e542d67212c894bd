"""A change that moves devices says, before it is saved, which targeted device types cannot run the version, how
many enrolled devices that concerns and what they get instead: rules (API and page), the default version (API and
page), and the rollout propose form. Version 2 here is opset 21, which the Raspberry Pi type (onnxruntime 1.16)
cannot run."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from devices.models import Rollout, TargetingRule
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import enroll, ready_version

pytestmark = pytest.mark.django_db

RULES_API = "/api/projects/kiosk/models/digit-classifier/rules/"
DEFAULT_API = "/api/projects/kiosk/models/digit-classifier/default-version/"
RULES_PAGE = "/p/kiosk/m/digit-classifier/delivery/"
PROPOSE_PAGE = "/p/kiosk/m/digit-classifier/rollouts/new/"


@pytest.fixture
def fleet(model, enrollment_key):
    """v1 runs everywhere; v2 (opset 21) fails on the Pi; three Pis and one gateway are enrolled."""
    cache.clear()
    v1 = ready_version(model)
    v2 = ready_version(model, seed=2, opset=21)
    for index in range(3):
        assert enroll(enrollment_key, device_id=f"pi-{index}", device_type="raspberry-pi-4")[0].status_code == 201
    assert enroll(enrollment_key, device_id="gateway-0")[0].status_code == 201
    return v1, v2


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_rule_api__version_the_pi_cannot_run__is_refused_with_the_warning_until_confirmed(fleet, teammate):
    client = api_client_for(teammate)

    refused = client.post(RULES_API, {"version": 2, "conditions": {"regions": ["DE"]}}, format="json")

    assert refused.status_code == 400, refused.content
    body = refused.json()
    assert "Version 2 cannot run on raspberry-pi-4 (3 enrolled devices)" in body["confirm"][0]
    assert len(body["warnings"]) == 1
    assert body["warnings"][0].startswith("raspberry-pi-4: the version cannot run on raspberry-pi-4 (")
    assert "3 enrolled devices of that type get nothing new" in body["warnings"][0]
    assert not TargetingRule.objects.exists()

    saved = client.post(RULES_API, {"version": 2, "conditions": {"regions": ["DE"]}, "confirm": True}, format="json")

    assert saved.status_code == 201, saved.content
    assert "3 enrolled devices of that type get nothing new" in saved.json()["warnings"][0]
    assert TargetingRule.objects.get().version == fleet[1]


def test_rule_api__compatible_variant_exists__warning_names_the_variant_devices_get(fleet, model, teammate):
    variant = ready_version(model, seed=2, opset=17, parent=fleet[1], transform="convert_opset")

    refused = api_client_for(teammate).post(RULES_API, {"version": 2}, format="json")

    assert refused.status_code == 400
    assert (
        f"3 enrolled devices of that type get version {variant.number}, a compatible variant derived from it, instead."
        in refused.json()["warnings"][0]
    )


def test_rule_api__target_without_the_pi__saves_without_warning(fleet, teammate):
    saved = api_client_for(teammate).post(
        RULES_API, {"version": 2, "conditions": {"device_types": ["x86-gateway"]}}, format="json"
    )

    assert saved.status_code == 201, saved.content
    assert saved.json()["warnings"] == []


def test_rule_api__named_pi_with_no_enrolled_pi__still_warns_with_zero_devices(model, teammate):
    ready_version(model)
    ready_version(model, seed=2, opset=21)

    refused = api_client_for(teammate).post(
        RULES_API, {"version": 2, "conditions": {"device_types": ["raspberry-pi-4"]}}, format="json"
    )

    assert refused.status_code == 400
    assert "(0 enrolled devices)" in refused.json()["confirm"][0]


def test_rule_page__warns_before_saving_and_saves_when_acknowledged(fleet, teammate):
    client = browser(teammate)
    form = {"action": "create", "priority": 10, "version": 2, "bucket_by": "device_id"}

    first = client.post(RULES_PAGE, form)

    assert first.status_code == 200
    page = first.content.decode()
    assert 'id="rule-impact"' in page
    assert "3 enrolled devices of that type get nothing new" in page
    assert "Save anyway" in page
    assert "Rule 1 saved" not in page
    assert not TargetingRule.objects.exists()

    second = client.post(RULES_PAGE, {**form, "confirm": "on"}, follow=True)

    assert TargetingRule.objects.count() == 1
    assert f"Rule {TargetingRule.objects.get().pk} saved." in second.content.decode()
    assert "Saved although raspberry-pi-4: the version cannot run" in second.content.decode()


def test_rule_page__editing_only_the_description__does_not_ask_again(fleet, model, teammate):
    from devices.rules import services as rules_services

    rule = rules_services.create_rule(model=model, version=fleet[1])
    url = f"/p/kiosk/m/digit-classifier/delivery/rules/{rule.pk}/"

    answer = browser(teammate).post(
        url, {"action": "save", "priority": 100, "version": 2, "bucket_by": "device_id", "description": "pis too"}
    )

    assert answer.status_code == 302
    rule.refresh_from_db()
    assert rule.description == "pis too"


def test_default_version_api__warns_and_saves_only_when_confirmed(fleet, model, teammate):
    client = api_client_for(teammate)

    refused = client.put(DEFAULT_API, {"version": 2}, format="json")

    assert refused.status_code == 400
    assert "3 enrolled devices of that type get nothing new" in refused.json()["warnings"][0]
    model.refresh_from_db()
    assert model.default_version is None

    saved = client.put(DEFAULT_API, {"version": 2, "confirm": True}, format="json")

    assert saved.status_code == 200
    assert saved.json()["version"] == 2 and len(saved.json()["warnings"]) == 1
    model.refresh_from_db()
    assert model.default_version == fleet[1]


def test_default_version__pis_held_by_a_rule__are_not_concerned(fleet, model, teammate):
    from devices.rules import services as rules_services

    rules_services.create_rule(model=model, version=fleet[0], conditions={"device_types": ["raspberry-pi-4"]})

    saved = api_client_for(teammate).put(DEFAULT_API, {"version": 2}, format="json")

    assert saved.status_code == 200, saved.content
    assert saved.json()["warnings"] == []


def test_default_version_page__warns_before_saving(fleet, model, teammate):
    client = browser(teammate)

    first = client.post(RULES_PAGE, {"action": "default", "default_version": "2"})

    assert first.status_code == 200
    assert 'id="default-impact"' in first.content.decode()
    assert "3 enrolled devices of that type get nothing new" in first.content.decode()
    model.refresh_from_db()
    assert model.default_version is None

    client.post(RULES_PAGE, {"action": "default", "default_version": "2", "confirm": "1"})

    model.refresh_from_db()
    assert model.default_version == fleet[1]


def test_propose_form__warns_about_the_pi_before_saving_a_draft(fleet, teammate):
    client = browser(teammate)
    form = {
        "version": 2,
        "stages": "10 60\n100 60",
        "max_download_failure_rate": 0.05,
        "max_install_failure_rate": 0.05,
        "max_latency_regression": 0.2,
        "min_devices_per_stage": 20,
        "rate_growth_factor": 2,
    }

    first = client.post(PROPOSE_PAGE, form)

    assert first.status_code == 400
    assert 'id="propose-impact"' in first.content.decode()
    assert "3 enrolled devices of that type get nothing new" in first.content.decode()
    assert not Rollout.objects.exists()

    second = client.post(PROPOSE_PAGE, {**form, "confirm": "on"})

    assert second.status_code == 302
    assert Rollout.objects.get().state == Rollout.State.DRAFT
