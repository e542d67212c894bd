"""POST /api/device/v1/checkin: resolution, compatibility fallback, ETags, desired vs installed, bad input."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from console.catalog import services as catalog_services
from devices.core.signing import check_download_token, verify_manifest
from devices.core.tickets import answer_part
from devices.delivery import presence
from devices.fleet import services as fleet_services
from devices.fleet.keys import download_secret
from devices.models import Device, DeviceEvent, DeviceModelState, FleetSettings, VoidedToken
from devices.rules import services as rules_services
from tests.devices.fleet_helpers import API, checkin, device_client, enroll, ready_version

pytestmark = pytest.mark.django_db


def answer_for(response, model: str = "digit-classifier") -> dict:
    assert response.status_code == 200, response.content
    return response.json()["models"][model]


def test_checkin__matching_rule__answers_a_signed_manifest_with_a_short_lived_download_url(
    enrolled, device_api, model, ready_v1, project
):
    device, _, config = enrolled
    rule = rules_services.create_rule(model=model, version=ready_v1, conditions={"regions": ["DE"]})

    response = checkin(device_api, config)

    entry = answer_for(response)
    manifest = entry["manifest"]
    assert entry["status"] == "assigned"
    assert entry["reason"] == f"rule {rule.pk} (region DE in [DE])"
    assert (manifest["model"], manifest["version_id"], manifest["version"]) == ("digit-classifier", ready_v1.pk, "1")
    assert (manifest["sha256"], manifest["size"], manifest["format"]) == (ready_v1.sha256, ready_v1.size_bytes, "onnx")
    assert manifest["runtime"] == {"name": "onnxruntime", "opset": 17, "min_version": "1.12"}
    assert verify_manifest(FleetSettings.objects.get(project=project).public_key, manifest)
    assert manifest["download_url"].startswith(f"{API}/download/{ready_v1.pk}?token=")
    token = manifest["download_url"].split("token=")[1]
    assert (
        check_download_token(
            download_secret(), token, version_id=ready_v1.pk, device_id="device-1", now=int(time.time())
        )
        is None
    )
    assert 0 < manifest["expires_at"] - time.time() <= 600
    assert response.json()["checkin_interval_s"] == 300
    assert response["ETag"].startswith('"')


def test_checkin__unchanged_answer__is_304_and_keeps_its_etag_across_fresh_urls(enrolled, device_api, model, ready_v1):
    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    first, second = checkin(device_api, config), checkin(device_api, config)
    # The ETag is "<answer digest>.<ticket>": the ticket carries the second it was issued in, the answer part
    # is what stays the same while the answer does.
    assert answer_part(first["ETag"]) == answer_part(second["ETag"])

    response = checkin(device_api, config, HTTP_IF_NONE_MATCH=first["ETag"])

    assert response.status_code == 304
    assert answer_part(response["ETag"]) == answer_part(first["ETag"])


def test_checkin__rule_edited__changes_the_answer_and_the_etag(enrolled, device_api, model, ready_v1):
    _, _, config = enrolled
    rule = rules_services.create_rule(model=model, version=ready_v1)
    first = checkin(device_api, config)
    v2 = ready_version(model, seed=1)

    rules_services.update_rule(rule=rule, version=v2)
    response = checkin(device_api, config, HTTP_IF_NONE_MATCH=first["ETag"])

    assert answer_for(response)["manifest"]["version_id"] == v2.pk
    assert response["ETag"] != first["ETag"]


def test_checkin__unknown_fingerprint_without_config__is_409_need_config(enrolled, device_api, model):
    _, _, config = enrolled

    response = checkin(device_api, {**config, "region": "FR"})

    assert response.status_code == 409
    assert response.json()["need_config"] is True


def test_checkin__new_configuration__is_taken_and_resolved_again(enrolled, device_api, model, ready_v1):
    device, _, config = enrolled
    v2 = ready_version(model, seed=1)
    rules_services.create_rule(model=model, version=v2, conditions={"app_version": ">=3"}, priority=1)
    rules_services.create_rule(model=model, version=ready_v1, priority=2)
    assert answer_for(checkin(device_api, config))["manifest"]["version_id"] == ready_v1.pk

    upgraded = {**config, "app_version": "3.0.1"}
    response = checkin(device_api, upgraded, send_config=True)

    assert answer_for(response)["manifest"]["version_id"] == v2.pk
    device.refresh_from_db()
    assert device.app_version == "3.0.1"
    assert checkin(device_api, upgraded).status_code == 200  # the new fingerprint is known now
    changed = DeviceEvent.objects.get(device=device, type="config_changed")
    assert "app_version '2.3.1' -> '3.0.1'" in changed.reason


def test_checkin__config_not_matching_its_fingerprint__is_400(enrolled, device_api):
    _, _, config = enrolled
    body = {"fingerprint": "a" * 64, "config": config, "models": ["digit-classifier"]}

    response = device_api.post(f"{API}/checkin", body, format="json")

    assert response.status_code == 400
    assert "does not match the config" in response.json()["detail"]


def test_checkin__new_configuration_with_unknown_device_type__is_400_and_keeps_the_old_one(enrolled, device_api):
    device, _, config = enrolled

    response = checkin(device_api, {**config, "device_type": "toaster"}, send_config=True)

    assert response.status_code == 400
    assert "unknown device type 'toaster'" in response.json()["detail"]
    device.refresh_from_db()
    assert device.device_type.slug == "x86-gateway"


def test_checkin__version_device_cannot_run__falls_back_to_compatible_child(enrollment_key, model):
    parent = ready_version(model, opset=21)  # onnxruntime 1.16 on the Pi only goes to opset 19
    child = ready_version(model, opset=17, parent=parent)
    rules_services.create_rule(model=model, version=parent)
    response, config = enroll(enrollment_key, device_type="raspberry-pi-4")
    device_api = device_client(response.json()["device_token"])

    entry = answer_for(checkin(device_api, config))

    assert entry["status"] == "fallback"
    assert entry["manifest"]["version_id"] == child.pk
    assert "cannot run on raspberry-pi-4" in entry["reason"] and "opset 21" in entry["reason"]
    state = DeviceModelState.objects.get(device__device_id="device-1")
    assert (state.desired_version, state.resolution, state.fell_back) == (child, "compatible_variant", True)


def test_checkin__version_device_cannot_run_and_no_variant__keeps_the_installed_version(
    enrollment_key, model, ready_v1
):
    too_new = ready_version(model, seed=1, opset=21)
    rules_services.create_rule(model=model, version=too_new)
    response, config = enroll(enrollment_key, device_type="raspberry-pi-4")
    device_api = device_client(response.json()["device_token"])
    installed = {"digit-classifier": {"version_id": ready_v1.pk, "sha256": ready_v1.sha256, "state": "running"}}

    entry = answer_for(checkin(device_api, config, installed=installed))

    assert entry["status"] == "none" and entry["manifest"] is None
    assert "keeping the installed version" in entry["reason"]
    state = DeviceModelState.objects.get(device__device_id="device-1")
    assert (state.resolution, state.installed_version, state.fell_back) == ("kept_installed", ready_v1, True)


def test_checkin__no_rule_matches__default_version_is_served_as_fallback(enrolled, device_api, model, ready_v1):
    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1, conditions={"regions": ["FR"]})
    rules_services.set_default_version(model=model, version=ready_v1)

    entry = answer_for(checkin(device_api, config))

    assert (entry["status"], entry["manifest"]["version_id"]) == ("fallback", ready_v1.pk)
    assert "default version" in entry["reason"]


def test_checkin__model_without_rule_or_default__is_none_with_the_reason(enrolled, device_api, model, ready_v1):
    _, _, config = enrolled

    entry = answer_for(checkin(device_api, config))

    assert entry == {
        "status": "none",
        "reason": "no rule matches and the model has no default version",
        "manifest": None,
    }


def test_checkin__model_of_another_project__looks_exactly_like_no_model(enrolled, device_api, other_project, outsider):
    _, _, config = enrolled
    theirs = catalog_services.create_model(project=other_project, name="secret-model", user=outsider)
    rules_services.set_default_version(model=theirs, version=ready_version(theirs))

    response = checkin(device_api, config, models=["secret-model", "no-such-model"])

    models = response.json()["models"]
    assert models["secret-model"] == {
        "status": "none",
        "manifest": None,
        "reason": "this project has no model named secret-model",
    }
    assert models["no-such-model"]["reason"] == "this project has no model named no-such-model"


def test_checkin__installed_report__is_recorded_as_desired_vs_actual(enrolled, device_api, model, ready_v1):
    device, _, config = enrolled
    v2 = ready_version(model, seed=1)
    rules_services.create_rule(model=model, version=v2)
    installed = {"digit-classifier": {"version_id": ready_v1.pk, "sha256": ready_v1.sha256, "state": "running"}}

    checkin(device_api, config, installed=installed)
    state = DeviceModelState.objects.get(device=device)
    assert (state.desired_version, state.installed_version, state.up_to_date) == (v2, ready_v1, False)

    installed["digit-classifier"] = {"version_id": v2.pk, "sha256": v2.sha256, "state": "running"}
    checkin(device_api, config, installed=installed)
    state.refresh_from_db()
    assert (state.installed_version, state.up_to_date) == (v2, True)
    assert DeviceEvent.objects.filter(device=device, type="assignment_changed").count() == 1


def test_checkin__steady_state__is_one_query(enrolled, device_api, model, ready_v1, django_assert_max_num_queries):
    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed = {"digit-classifier": {"version_id": ready_v1.pk, "sha256": ready_v1.sha256, "state": "running"}}
    checkin(device_api, config, installed=installed)

    with django_assert_max_num_queries(1):
        assert checkin(device_api, config, installed=installed).status_code == 200


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_checkin__token_lookup__becomes_a_prepared_statement_on_postgresql(enrolled, device_api):
    """The lookup every check-in makes is planned once per connection, not on every request."""
    _, _, config = enrolled
    for _ in range(6):
        assert checkin(device_api, config).status_code == 200

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", ["%token_hash%"])
        statements = [row[0] for row in cursor.fetchall()]
    assert len(statements) == 1
    assert 'FROM "devices_device" d' in statements[0]


def test_checkin__first_answer_for_many_models__does_not_grow_with_rules_or_models(
    enrolled, device_api, model, ready_v1, project, owner, django_assert_max_num_queries
):
    _, _, config = enrolled
    names = []
    for index in range(5):
        other = catalog_services.create_model(project=project, name=f"model-{index}", user=owner)
        for priority in range(20):
            rules_services.create_rule(
                model=other,
                version=ready_v1,
                priority=priority,
                conditions={"regions": ["FR"]} if priority < 19 else {},
            )
        names.append(other.name)

    with django_assert_max_num_queries(14):
        assert checkin(device_api, config, models=names).status_code == 200


def test_checkin__interval__is_the_projects_unless_the_device_has_its_own(enrolled, device_api, project):
    device, _, config = enrolled
    fleet_services.set_project_checkin_interval(fleet=FleetSettings.objects.get(project=project), seconds=120)
    assert checkin(device_api, config).json()["checkin_interval_s"] == 120

    fleet_services.set_device_checkin_interval(device=device, seconds=30)
    assert checkin(device_api, config).json()["checkin_interval_s"] == 30


def test_checkin__records_last_seen(enrolled, device_api):
    device, _, config = enrolled
    assert device.last_seen_at is None

    checkin(device_api, config)

    device.refresh_from_db()
    assert device.last_seen_at is not None


@pytest.mark.django_db(transaction=True)  # the write comes from another thread, on its own connection
def test_checkin__last_seen__is_written_behind_not_during_the_checkin(enrolled, device_api, settings):
    device, _, config = enrolled
    settings.DEVICE_LAST_SEEN_FLUSH_S = 0.3

    assert checkin(device_api, config).status_code == 200
    assert Device.objects.get(pk=device.pk).last_seen_at is None

    deadline = time.monotonic() + 10
    while Device.objects.get(pk=device.pk).last_seen_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Device.objects.get(pk=device.pk).last_seen_at is not None


def test_checkin__last_seen_write_failing__still_answers(enrolled, device_api, monkeypatch):
    from django.db import OperationalError

    def deadlock(*args, **kwargs):
        raise OperationalError("deadlock detected")

    _, _, config = enrolled
    monkeypatch.setattr(presence, "_write", deadlock)

    assert checkin(device_api, config).status_code == 200


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Authentication credentials were not provided"),
        ({"HTTP_AUTHORIZATION": "Device dev_wrong"}, "Unknown device token"),
        ({"HTTP_AUTHORIZATION": "Device a b"}, "must be 'Device <device token>'"),
    ],
)
def test_checkin__missing_or_wrong_token__is_401(enrolled, headers, message):
    from rest_framework.test import APIClient

    response = APIClient().post(f"{API}/checkin", {"fingerprint": "0" * 64}, format="json", **headers)

    assert response.status_code == 401
    assert message in response.json()["detail"]
    assert response["WWW-Authenticate"] == "Device"


def test_checkin__revoked_device__is_401(enrolled, device_api):
    device, _, config = enrolled
    fleet_services.revoke_device(device=device)

    response = checkin(device_api, config)

    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "JSON parse error"),
        (b'"a string"', "JSON object"),
        (b'{"fingerprint": "xyz"}', "fingerprint"),
        (b'{"fingerprint": "' + b"0" * 64 + b'", "models": ["Bad Name"]}', "models"),
        (
            b'{"fingerprint": "' + b"0" * 64 + b'", "models": [' + b",".join([b'"m"'] * 51) + b"]}",
            "at most 50 per check-in",
        ),
        (
            b'{"fingerprint": "' + b"0" * 64 + b'", "installed": {"m": {"version_id": "x"}}}',
            "m.version_id must be a positive integer",
        ),
    ],
)
def test_checkin__bad_body__is_400_and_changes_nothing(enrolled, device_api, body, message):
    device, _, _ = enrolled

    response = device_api.post(f"{API}/checkin", data=body, content_type="application/json")

    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not DeviceModelState.objects.exists()
    assert Device.objects.get(pk=device.pk).fingerprint == device.fingerprint


DEEP = b"[" * 5000 + b"]" * 5000  # 10 kB nested 5,000 levels: json.loads alone raises RecursionError


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        b'{"fingerprint": "' + b"0" * 64 + b'", "models": ' + DEEP + b"}",  # what the plain view parses
        b'{"fingerprint": "' + b"0" * 64 + b'", "installed": {"m": {"version_id": 1, "x": ' + DEEP + b"}}}",
        b'{"fingerprint": "' + b"0" * 64 + b'", "config": {"attributes": {"a": ' + b"[" * 200 + b"]" * 200 + b"}}}",
    ],
    ids=["whole-body", "models", "installed", "config-200-levels"],
)
def test_checkin__body_nested_too_deep__is_400_saying_so_and_changes_nothing(enrolled, device_api, body):
    device, _, _ = enrolled

    response = device_api.post(f"{API}/checkin", data=body, content_type="application/json")

    assert response.status_code == 400
    assert "levels deep" in response.json()["detail"]
    assert not DeviceModelState.objects.exists()
    assert Device.objects.get(pk=device.pk).fingerprint == device.fingerprint


def test_checkin__is_throttled_per_device(enrolled, device_api, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    _, _, config = enrolled
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"device": "2/min", "enroll": "60/min"})

    statuses = [checkin(device_api, config).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]


# -- the steady state: If-None-Match answered before resolving ------------------------------------------------


def _steady(device_api, model, ready_v1, config):
    """A device that installed what it was assigned and holds the ETag of its last answer."""
    installed = {"digit-classifier": {"version_id": ready_v1.pk, "sha256": ready_v1.sha256, "state": "running"}}
    etag = checkin(device_api, config, installed=installed)["ETag"]
    assert checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag).status_code == 304
    return installed, etag


def test_checkin__steady_304__resolves_signs_and_writes_nothing(
    enrolled, device_api, model, ready_v1, django_assert_num_queries
):
    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)

    with django_assert_num_queries(0):  # the ticket in the ETag stands for the device row
        response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag)

    assert (response.status_code, response["ETag"]) == (304, etag)


def test_checkin__steady_304__notes_the_device_as_seen(enrolled, device_api, model, ready_v1):
    device, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)
    Device.objects.filter(pk=device.pk).update(last_seen_at=None)
    presence.forget()

    assert checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag).status_code == 304

    assert Device.objects.get(pk=device.pk).last_seen_at is not None


def test_checkin__revoked_device_holding_a_ticket__is_401(enrolled, device_api, model, ready_v1):
    device, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)

    fleet_services.revoke_device(device=device)
    response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_checkin__old_token_of_a_device_enrolled_again__is_401_even_with_its_ticket(
    enrollment_key, enrolled, device_api, model, ready_v1
):
    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)
    new_token = enroll(enrollment_key)[0].json()["device_token"]

    response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 401
    assert checkin(device_client(new_token), config, installed=installed).status_code == 200


def test_checkin__voided_tokens__are_kept_for_a_ticket_lifetime_only(enrollment_key, enrolled, project, settings):
    device, _, _ = enrolled
    settings.DEVICE_CHECKIN_TICKET_TTL_S = 3600
    long_ago = timezone.now() - timedelta(days=2)
    VoidedToken.objects.create(project=project, token_hash="a" * 64, voided_at=long_ago)
    VoidedToken.objects.create(project=project, token_hash="b" * 64, voided_at=timezone.now() - timedelta(hours=2))

    fleet_services.revoke_device(device=device)

    kept = set(VoidedToken.objects.filter(project=project).values_list("token_hash", flat=True))
    assert kept == {"b" * 64, Device.objects.get(pk=device.pk).token_hash}


def test_checkin__ticket_with_a_wrong_token__is_401(enrolled, device_api, model, ready_v1):
    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)

    response = checkin(device_client("dev_not-a-token"), config, installed=installed, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 401
    assert "Unknown device token" in response.json()["detail"]


@pytest.mark.parametrize("tamper", ["device", "project", "issued", "mac"])
def test_checkin__tampered_ticket__is_answered_from_the_database(
    enrolled, device_api, model, ready_v1, tamper, django_assert_num_queries
):
    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)
    answer, project_id, device_pk, issued, mac = etag.strip('"').split(".")
    changed = {
        "device": (answer, project_id, str(int(device_pk) + 1), issued, mac),
        "project": (answer, str(int(project_id) + 1), device_pk, issued, mac),
        "issued": (answer, project_id, device_pk, str(int(issued) + 1), mac),
        "mac": (answer, project_id, device_pk, issued, mac[::-1]),
    }[tamper]
    tampered = '"' + ".".join(changed) + '"'

    response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=tampered)

    # Same answer, known only from the device row: 304 with a genuine ticket, which the next check-in can use.
    assert response.status_code == 304 and response["ETag"] != tampered
    with django_assert_num_queries(0):
        again = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304


@pytest.mark.parametrize(
    "header",
    [
        '"' + "a" * 24 + ".\u00b2.1.1." + "0" * 32 + '"',
        '"' + "a" * 24 + ".1.1.1." + "\u00e9" * 32 + '"',
        "x" * 5000,
        ", , ,",
    ],
)
def test_checkin__garbage_if_none_match__is_answered_normally(enrolled, device_api, model, ready_v1, header):
    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)

    response = checkin(device_api, config, HTTP_IF_NONE_MATCH=header)

    assert answer_for(response)["manifest"]["version_id"] == ready_v1.pk


def test_checkin__expired_ticket__is_answered_from_the_database_with_a_fresh_one(
    enrolled, device_api, model, ready_v1, settings, django_assert_num_queries
):
    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)
    settings.DEVICE_CHECKIN_TICKET_TTL_S = 0
    time.sleep(1.1)

    response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert answer_part(response["ETag"]) == answer_part(etag) and response["ETag"] != etag
    settings.DEVICE_CHECKIN_TICKET_TTL_S = 3600
    with django_assert_num_queries(0):
        assert checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


def test_checkin__ticket_for_another_request__does_not_answer_this_one(enrolled, device_api, model, ready_v1):
    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)

    response = checkin(
        device_api, config, installed=installed, models=["digit-classifier", "other-model"], HTTP_IF_NONE_MATCH=etag
    )

    assert response.status_code == 200
    assert response.json()["models"]["other-model"]["status"] == "none"


def test_checkin__device_interval_changed__is_not_304(enrolled, device_api, model, ready_v1):
    device, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)

    fleet_services.set_device_checkin_interval(device=device, seconds=45)
    response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response.json()["checkin_interval_s"] == 45


def test_checkin__ticket_path__is_throttled_too(enrolled, device_api, model, ready_v1, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"device": "2/min", "enroll": "60/min"})
    from django.core.cache import caches

    caches["local"].clear()  # the device throttle counts per web process (DeviceRateThrottle)
    statuses = [checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag).status_code for _ in range(3)]

    assert statuses == [304, 304, 429]


def test_checkin__rule_changed__is_not_304(enrolled, device_api, model, ready_v1):
    _, _, config = enrolled
    rule = rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)
    v2 = ready_version(model, seed=1)

    rules_services.update_rule(rule=rule, version=v2)
    response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag)

    assert answer_for(response)["manifest"]["version_id"] == v2.pk


def test_checkin__default_version_changed__is_not_304(enrolled, device_api, model, ready_v1):
    _, _, config = enrolled
    rules_services.set_default_version(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)
    v2 = ready_version(model, seed=1)

    rules_services.set_default_version(model=model, version=v2)
    response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag)

    assert answer_for(response)["manifest"]["version_id"] == v2.pk


def test_checkin__configuration_changed__is_not_304(enrolled, device_api, model, ready_v1):
    device, _, config = enrolled
    v2 = ready_version(model, seed=1)
    rules_services.create_rule(model=model, version=v2, conditions={"app_version": ">=3"}, priority=1)
    rules_services.create_rule(model=model, version=ready_v1, priority=2)
    installed, etag = _steady(device_api, model, ready_v1, config)

    upgraded = {**config, "app_version": "3.0.1"}
    response = checkin(device_api, upgraded, installed=installed, send_config=True, HTTP_IF_NONE_MATCH=etag)

    assert answer_for(response)["manifest"]["version_id"] == v2.pk


def test_checkin__new_install_report__is_recorded_and_then_steady_again(enrolled, device_api, model, ready_v1):
    device, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)
    failed = {"digit-classifier": {**installed["digit-classifier"], "state": "failed"}}

    response = checkin(device_api, config, installed=failed, HTTP_IF_NONE_MATCH=etag)

    # The answer is the same (so still 304, with a ticket for the new report), but the report was taken.
    assert (response.status_code, answer_part(response["ETag"])) == (304, answer_part(etag))
    assert DeviceModelState.objects.get(device=device).installed_state == "failed"
    again = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert DeviceModelState.objects.get(device=device).installed_state == "running"


def test_checkin__interval_changed__is_not_304(enrolled, device_api, model, ready_v1, project):
    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)

    fleet_services.set_project_checkin_interval(fleet=FleetSettings.objects.get(project=project), seconds=120)
    response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response.json()["checkin_interval_s"] == 120


def test_checkin__enrolled_again__resolves_again_before_answering_304(
    enrollment_key, enrolled, device_api, model, ready_v1
):
    device, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, model, ready_v1, config)
    token = enroll(enrollment_key)[0].json()["device_token"]

    response = checkin(device_client(token), config, installed=installed, HTTP_IF_NONE_MATCH=etag)

    # Same answer, but only known after resolving: the old ticket was for the old token, the new one is fresh.
    assert response.status_code == 304 and response["ETag"] != etag
    assert len(Device.objects.get(pk=device.pk).delivery_digest) == 64


def test_checkin__plain_view_and_drf_fallback__give_the_same_errors(enrolled, device_api):
    # The usual body goes through the plain view, a body with config through CheckinView: same 401 and 409.
    from rest_framework.test import APIClient

    _, _, config = enrolled
    body = {"fingerprint": "0" * 64, "models": [], "installed": {}}
    for extra in ({}, {"config": config}):
        response = APIClient().post(f"{API}/checkin", {**body, **extra}, format="json")
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Device"
        assert "credentials were not provided" in response.json()["detail"]
    assert checkin(device_api, {**config, "region": "FR"}).json()["need_config"] is True
    assert device_api.get(f"{API}/checkin").status_code == 405


def test_checkin__throttled__says_when_to_retry(enrolled, device_api, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    _, _, config = enrolled
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"device": "1/min", "enroll": "60/min"})
    checkin(device_api, config)

    response = checkin(device_api, config)

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "throttled" in response.json()["detail"]


def test_checkin__is_in_the_openapi_schema(client):
    assert b"/api/device/v1/checkin" in client.get("/api/schema/").content
