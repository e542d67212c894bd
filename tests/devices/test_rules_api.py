"""Developer API for targeting rules, the default version and the preview."""

from __future__ import annotations

import pytest

from devices.models import TargetingRule
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import enroll, ready_version

pytestmark = pytest.mark.django_db

RULES = "/api/projects/kiosk/models/digit-classifier/rules/"


def test_rules__developer_creates_a_rule_and_lists_them_in_evaluation_order(teammate, ready_v1):
    client = api_client_for(teammate)
    late = client.post(RULES, {"priority": 50, "version": 1, "conditions": {"regions": ["de"]}}, format="json")
    early = client.post(
        RULES,
        {
            "priority": 10,
            "version": 1,
            "conditions": {
                "attributes": [{"key": "tier", "op": "eq", "value": "pro"}],
                "percentage": 25,
                "salt": "pro-25",
            },
        },
        format="json",
    )

    assert late.status_code == 201, late.content
    assert late.json()["conditions"]["regions"] == ["DE"]
    listed = client.get(RULES).json()
    assert [rule["id"] for rule in listed] == [early.json()["id"], late.json()["id"]]
    assert listed[0]["version"] == 1


def test_rules__rule_hidden_by_an_earlier_one__names_it_in_shadowed_by(teammate, ready_v1):
    client = api_client_for(teammate)
    everyone = client.post(RULES, {"priority": 1, "version": 1}, format="json").json()
    hidden = client.post(RULES, {"priority": 2, "version": 1, "conditions": {"regions": ["FR"]}}, format="json").json()

    listed = {rule["id"]: rule for rule in client.get(RULES).json()}

    assert listed[hidden["id"]]["shadowed_by"] == everyone["id"]
    assert listed[everyone["id"]]["shadowed_by"] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"version": 9}, "has no version 9"),
        ({"version": 1, "conditions": {"regions": ["Germany"]}}, "not a 2-letter ISO 3166 code"),
        ({"version": 1, "conditions": {"app_version": ">=two"}}, "invalid version range"),
        ({"version": 1, "conditions": {"percentage": 120}}, "outside 0..100"),
        ({"version": 1, "conditions": {"region": ["DE"]}}, "unknown condition region"),
        ({"version": 1, "conditions": {"device_types": ["toaster"]}}, "unknown device type toaster"),
        ({"version": 1, "conditions": {"attributes": [{"key": "ram", "op": "gte", "value": "4"}]}}, "needs a number"),
    ],
)
def test_rules__invalid_rule__is_400_with_a_message(teammate, ready_v1, body, message):
    response = api_client_for(teammate).post(RULES, body, format="json")

    assert response.status_code == 400
    assert message in str(response.json())
    assert not TargetingRule.objects.exists()


def test_rules__version_still_checking__cannot_be_served(teammate, model, ready_v1):
    from console.catalog import services as catalog_services
    from console.catalog.uploads import temporary_upload
    from tests.conftest import make_mlp

    with temporary_upload("m.onnx", make_mlp(seed=5).SerializeToString()) as upload:
        catalog_services.upload_version(model=model, uploaded=upload)

    response = api_client_for(teammate).post(RULES, {"version": 2}, format="json")

    assert response.status_code == 400
    assert "version 2 is checking; only a ready (checked) version may be served" in str(response.json())


def test_rules__edit_and_delete(teammate, model, ready_v1):
    client = api_client_for(teammate)
    ready_version(model, seed=1)
    rule = client.post(RULES, {"version": 1}, format="json").json()

    patched = client.patch(f"{RULES}{rule['id']}/", {"version": 2, "priority": 5}, format="json")
    assert (patched.status_code, patched.json()["version"], patched.json()["priority"]) == (200, 2, 5)

    assert client.delete(f"{RULES}{rule['id']}/").status_code == 204
    assert not TargetingRule.objects.exists()


@pytest.mark.parametrize(("persona", "status"), [("viewer", 403), ("approver", 403), ("outsider", 404)])
def test_rules__only_developers_and_owners_change_rules(request, ready_v1, persona, status):
    client = api_client_for(request.getfixturevalue(persona))

    assert client.post(RULES, {"version": 1}, format="json").status_code == status
    assert client.get(RULES).status_code == (200 if persona != "outsider" else 404)


def test_default_version__set_and_cleared(teammate, model, ready_v1):
    client = api_client_for(teammate)
    url = "/api/projects/kiosk/models/digit-classifier/default-version/"

    assert client.put(url, {"version": 1}, format="json").json() == {"version": 1, "warnings": []}
    model.refresh_from_db()
    assert model.default_version == ready_v1
    assert client.put(url, {"version": None}, format="json").json() == {"version": None, "warnings": []}
    assert client.put(url, {"version": 7}, format="json").status_code == 400


def test_preview__says_which_rule_wins_and_why_and_counts_enrolled_devices(teammate, model, ready_v1, enrollment_key):
    client = api_client_for(teammate)
    fr = client.post(RULES, {"priority": 1, "version": 1, "conditions": {"regions": ["FR"]}}, format="json").json()
    pro = client.post(
        RULES,
        {"priority": 2, "version": 1, "conditions": {"attributes": [{"key": "tier", "op": "eq", "value": "pro"}]}},
        format="json",
    ).json()
    enroll(enrollment_key, device_id="a", region="FR")
    enroll(enrollment_key, device_id="b", region="DE")
    enroll(enrollment_key, device_id="c", region="DE", attributes={"tier": "free"})

    response = client.post(
        f"{RULES}preview/", {"device_type": "x86-gateway", "region": "DE", "attributes": {"tier": "pro"}}, format="json"
    )

    body = response.json()
    assert response.status_code == 200, body
    assert [item["outcome"] for item in body["rules"]] == ["no_match", "chosen"]
    assert body["rules"][0]["reason"] == "region DE not in [FR]"
    assert (body["status"], body["version"]) == ("assigned", 1)
    assert body["counts"]["devices"] == 3
    assert body["counts"]["rules"][str(fr["id"])] == {"matches": 1, "wins": 1}
    assert body["counts"]["rules"][str(pro["id"])] == {"matches": 2, "wins": 1}
    assert body["counts"]["unmatched"] == 1


def test_preview__unknown_device_type__is_400(teammate, ready_v1):
    response = api_client_for(teammate).post(f"{RULES}preview/", {"device_type": "toaster"}, format="json")
    assert response.status_code == 400


def test_preview__percentage_split_by_device_id__counts_each_devices_own_bucket(teammate, ready_v1, enrollment_key):
    from devices.core.bucketing import in_percentage

    client = api_client_for(teammate)
    half = client.post(
        RULES, {"priority": 1, "version": 1, "conditions": {"percentage": 50, "salt": "half"}}, format="json"
    ).json()
    rest = client.post(RULES, {"priority": 2, "version": 1}, format="json").json()
    ids = [f"kiosk-{index}" for index in range(16)]
    for device_id in ids:
        enroll(enrollment_key, device_id=device_id)
    inside = sum(in_percentage("half", device_id, 50) for device_id in ids)
    assert 0 < inside < len(ids)  # the split really divides this fleet

    counts = client.post(f"{RULES}preview/", {"device_type": "x86-gateway"}, format="json").json()["counts"]

    assert counts["rules"][str(half["id"])] == {"matches": inside, "wins": inside}
    assert counts["rules"][str(rest["id"])] == {"matches": len(ids), "wins": len(ids) - inside}
    assert (counts["devices"], counts["sampled"], counts["unmatched"]) == (len(ids), len(ids), 0)


def test_preview__counts_devices_sharing_a_configuration_once_each(teammate, ready_v1, enrollment_key):
    client = api_client_for(teammate)
    pro = client.post(
        RULES,
        {
            "priority": 1,
            "version": 1,
            "conditions": {"attributes": [{"key": "tier", "op": "eq", "value": "pro"}], "app_version": ">=2.0"},
        },
        format="json",
    ).json()
    for index in range(6):
        enroll(enrollment_key, device_id=f"pro-{index}")  # tier pro, app 2.3.1
    for index in range(4):
        enroll(enrollment_key, device_id=f"old-{index}", app_version="1.9.0")

    counts = client.post(f"{RULES}preview/", {"device_type": "x86-gateway"}, format="json").json()["counts"]

    assert counts["rules"][str(pro["id"])] == {"matches": 6, "wins": 6}
    assert (counts["devices"], counts["unmatched"]) == (10, 4)


def test_preview__counts_again_when_a_device_enrolls_or_is_revoked(teammate, ready_v1, enrollment_key):
    client = api_client_for(teammate)
    everyone = client.post(RULES, {"version": 1}, format="json").json()
    enroll(enrollment_key, device_id="first")

    def matched():
        body = client.post(f"{RULES}preview/", {"device_type": "x86-gateway"}, format="json").json()
        return body["counts"]["rules"][str(everyone["id"])]["matches"]

    assert matched() == 1
    enroll(enrollment_key, device_id="second")
    assert matched() == 2
    assert client.post("/api/projects/kiosk/devices/first/revoke/").status_code == 200
    assert matched() == 1


def test_rules_list__reads_the_same_queries_for_a_larger_fleet(
    teammate, ready_v1, enrollment_key, django_assert_max_num_queries
):
    client = api_client_for(teammate)
    for priority in range(8):
        client.post(RULES, {"priority": priority, "version": 1, "conditions": {"regions": ["DE"]}}, format="json")
    for index in range(10):
        enroll(enrollment_key, device_id=f"d{index}")

    with django_assert_max_num_queries(6):
        listed = client.get(RULES).json()

    assert len(listed) == 8
    assert [rule["shadowed_by"] is not None for rule in listed] == [False] + [True] * 7
