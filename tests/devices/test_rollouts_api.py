"""The rollouts API: the lifecycle by HTTP, four eyes answered 403, conflicts 409, bad plans 400."""

from __future__ import annotations

import pytest

from devices.models import Rollout
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import ready_version

pytestmark = pytest.mark.django_db

STAGES = [
    {"percent": 1, "dwell_minutes": 60},
    {"percent": 10, "dwell_minutes": 60},
    {"percent": 100, "dwell_minutes": 60},
]


@pytest.fixture
def base(project, model):
    model.default_version = ready_version(model, seed=1)
    ready_version(model, seed=2)  # version 2: what the rollouts ship
    model.save(update_fields=["default_version"])
    return f"/api/projects/{project.slug}/models/{model.name}/rollouts/"


def _propose(client, base, **body):
    return client.post(
        base, {"version": 2, "target": {"device_types": ["x86-gateway"]}, "stages": STAGES, **body}, format="json"
    )


def test_lifecycle_over_http(base, teammate, approver, viewer):
    dev, amy = api_client_for(teammate), api_client_for(approver)
    created = _propose(dev, base)
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["state"], body["version"], body["previous_version"], body["proposer"]) == ("draft", 2, 1, "dev-dan")
    url = f"{base}{body['id']}/"
    assert dev.post(url + "submit/").json()["state"] == "pending_approval"
    approved = amy.post(url + "approve/", {"comment": "ok", "fingerprint": body["fingerprint"]}, format="json")
    assert approved.status_code == 200, approved.content
    assert approved.json()["approvals"][0] | {"created_at": None, "id": None} == {
        "id": None,
        "approver": "amy-approver",
        "decision": "approve",
        "comment": "ok",
        "is_current": True,
        "created_at": None,
    }
    assert dev.post(url + "start/").json()["state"] == "running"
    assert dev.post(url + "pause/").json()["state"] == "paused"
    assert dev.post(url + "resume/").json()["state"] == "running"
    assert dev.post(url + "rollback/").json()["state"] == "rolled_back"
    listed = api_client_for(viewer).get(base)
    assert listed.status_code == 200
    assert [(r["id"], r["state"]) for r in listed.json()["results"]] == [(body["id"], "rolled_back")]


def test_approving_your_own_rollout__is_403_with_a_reason(base, teammate, owner):
    owner_client = api_client_for(owner)
    rollout = _propose(owner_client, base).json()
    owner_client.post(f"{base}{rollout['id']}/submit/")
    answer = owner_client.post(f"{base}{rollout['id']}/approve/", {}, format="json")
    assert answer.status_code == 403 and "four eyes" in answer.json()["detail"]
    assert Rollout.objects.get(pk=rollout["id"]).state == Rollout.State.PENDING_APPROVAL


@pytest.mark.parametrize("who", ["teammate", "viewer"])
def test_approving_as_developer_or_viewer__is_403_naming_the_role(base, teammate, who, request):
    rollout = _propose(api_client_for(teammate), base).json()
    api_client_for(teammate).post(f"{base}{rollout['id']}/submit/")
    answer = api_client_for(request.getfixturevalue(who)).post(f"{base}{rollout['id']}/approve/", {}, format="json")
    assert answer.status_code == 403 and "may not approve" in answer.json()["detail"]
    assert Rollout.objects.get(pk=rollout["id"]).state == Rollout.State.PENDING_APPROVAL


def test_approving_after_the_version_changed__is_409_and_the_edit_voided_the_approval(base, teammate, approver, model):
    dev, amy = api_client_for(teammate), api_client_for(approver)
    rollout = _propose(dev, base).json()
    url = f"{base}{rollout['id']}/"
    dev.post(url + "submit/")
    assert amy.post(url + "approve/", {"fingerprint": rollout["fingerprint"]}, format="json").status_code == 200
    ready_version(model, seed=3)
    edited = dev.patch(url, {"version": 3}, format="json")
    assert edited.status_code == 200 and edited.json()["state"] == "pending_approval"
    assert edited.json()["approvals"][0]["is_current"] is False
    stale = amy.post(url + "approve/", {"fingerprint": rollout["fingerprint"]}, format="json")
    assert stale.status_code == 409 and "changed after you opened it" in stale.json()["detail"]
    assert dev.post(url + "start/").status_code == 409


def test_overlapping_running_rollout__is_409_naming_it(base, teammate, approver):
    dev, amy = api_client_for(teammate), api_client_for(approver)
    first = _propose(dev, base).json()
    dev.post(f"{base}{first['id']}/submit/")
    amy.post(f"{base}{first['id']}/approve/", {}, format="json")
    dev.post(f"{base}{first['id']}/start/")
    second = _propose(dev, base, target={"regions": ["DE"]}).json()
    answer = dev.post(f"{base}{second['id']}/submit/")
    assert answer.status_code == 409 and f"rollout {first['id']} of digit-classifier" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"stages": [{"percent": 50, "dwell_minutes": 5}, {"percent": 10, "dwell_minutes": 5}]}, "stages", "below"),
        ({"stages": [{"percent": 50, "dwell_minutes": 5}, {"percent": 50, "dwell_minutes": 5}]}, "stages", "repeats"),
        (
            {"stages": [{"percent": 50, "dwell_minutes": 5}, {"percent": 150, "dwell_minutes": 5}]},
            "stages",
            "at most 100",
        ),
        ({"stages": [{"percent": 100, "dwell_minutes": 99999}]}, "stages", "dwell_minutes"),
        ({"max_download_failure_rate": 3}, "thresholds", "max_download_failure_rate"),
        ({"target": {"percentage": 5}}, "target", "stages"),
        ({"target": {"device_types": ["toaster"]}}, "target", "unknown device type toaster"),
    ],
)
def test_bad_plan__is_400_naming_the_field_and_saves_nothing(base, teammate, body, field, words):
    answer = _propose(api_client_for(teammate), base, **body)
    assert answer.status_code == 400
    assert words in " ".join(answer.json()[field])
    assert not Rollout.objects.exists()


def test_incompatible_version__is_400_naming_the_device_types(base, teammate, model):
    ready_version(model, seed=9, opset=21)
    dev = api_client_for(teammate)
    rollout = _propose(dev, base, version=3, target={"device_types": ["raspberry-pi-4", "x86-gateway"]}).json()
    answer = dev.post(f"{base}{rollout['id']}/submit/")
    assert answer.status_code == 400 and "cannot run on raspberry-pi-4" in answer.json()["detail"]


def test_reject_without_comment__is_400(base, teammate, approver):
    rollout = _propose(api_client_for(teammate), base).json()
    api_client_for(teammate).post(f"{base}{rollout['id']}/submit/")
    answer = api_client_for(approver).post(f"{base}{rollout['id']}/reject/", {"comment": ""}, format="json")
    assert answer.status_code == 400 and "comment" in answer.json()["detail"]


def test_rollouts_list__reads_a_fixed_number_of_queries(base, teammate, approver, django_assert_max_num_queries):
    dev, amy = api_client_for(teammate), api_client_for(approver)
    for region in ("DE", "FR", "IT", "ES"):
        rollout = _propose(dev, base, target={"regions": [region]}).json()
        dev.post(f"{base}{rollout['id']}/submit/")
        amy.post(f"{base}{rollout['id']}/approve/", {}, format="json")
    with django_assert_max_num_queries(8):
        answer = api_client_for(approver).get(base)
    assert [len(r["approvals"]) for r in answer.json()["results"]] == [1, 1, 1, 1]
