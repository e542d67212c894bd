"""Experiments through the developer API: create, start, stop, promote, results; every bad input refused with a
message and nothing changed; devices assigned at check-in, counted per arm when they report."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from console.models import ModelVersion
from devices.core.bucketing import bucket
from devices.models import (
    Device,
    DeviceModelState,
    Experiment,
    ExperimentArm,
    ExperimentEnrollment,
    ExperimentRollup,
    Rollout,
)
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import checkin, device_client, enroll, ready_version

pytestmark = pytest.mark.django_db

BASE = "/api/projects/kiosk/models/digit-classifier/experiments/"


@pytest.fixture
def versions(model):
    """v1 (control) and v2 (challenger), both ready for every built-in device type."""
    return ready_version(model, seed=1), ready_version(model, seed=2)


def body(**overrides):
    data = {
        "name": "faster-mlp",
        "traffic_percent": 100,
        "arms": [{"version": 1, "weight_percent": 50}, {"version": 2, "weight_percent": 50}],
        "primary_metric": "latency",
        "guardrail_metrics": ["accuracy", "install_failure_rate"],
        "target": {"device_types": ["x86-gateway"]},
    }
    data.update(overrides)
    return data


def create(client, **overrides):
    return client.post(BASE, body(**overrides), format="json")


def counts():
    return Experiment.objects.count(), ExperimentArm.objects.count()


def test_create__draft_with_control_first_and_weights_in_basis_points(owner, versions):
    response = create(api_client_for(owner))
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["state"] == "draft"
    assert data["traffic_percent"] == 100
    assert [(a["name"], a["version"], a["weight_percent"], a["control"]) for a in data["arm_list"]] == [
        ("v1", 1, 50, True),
        ("v2", 2, 50, False),
    ]
    experiment = Experiment.objects.get()
    assert experiment.salt.startswith("experiment:")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {
                "traffic_percent": 20,
                "arms": [{"version": 1, "weight_percent": 10}, {"version": 2, "weight_percent": 5}],
            },
            "add up to 15 % but the traffic share is 20 %",
        ),
        (
            {"arms": [{"version": 1, "weight_percent": 50}, {"version": 1, "weight_percent": 50}]},
            "two arms use version 1",
        ),
        (
            {
                "arms": [
                    {"version": 1, "weight_percent": 50, "control": False},
                    {"version": 2, "weight_percent": 50, "control": False},
                ]
            },
            "no control arm",
        ),
        ({"arms": [{"version": 1, "weight_percent": 100}]}, "at least two arms"),
        ({"target": {"percentage": 10}}, "target may not hold percentage"),
        ({"primary_metric": "happiness"}, "happiness"),
    ],
)
def test_create__bad_input__is_refused_with_a_message_and_nothing_changes(owner, versions, overrides, message):
    response = create(api_client_for(owner), **overrides)
    assert response.status_code == 400
    assert message in str(response.json())
    assert counts() == (0, 0)


def test_create__an_unchecked_or_failed_arm_version__is_refused(owner, model, versions):
    client = api_client_for(owner)
    ModelVersion.objects.filter(number=2).update(state=ModelVersion.State.CHECKING)
    response = create(client)
    assert response.status_code == 400
    assert "version 2 has not been checked yet" in response.json()["detail"]
    ModelVersion.objects.filter(number=2).update(state=ModelVersion.State.FAILED)
    response = create(client)
    assert response.status_code == 400
    assert "version 2 failed its check" in response.json()["detail"]
    assert counts() == (0, 0)


def test_create__a_version_of_another_model__is_refused(owner, project, versions):
    from console.catalog import services as catalog_services

    other = catalog_services.create_model(project=project, name="other-model", user=owner)
    foreign = ready_version(other, seed=3)
    arms = [{"version": 1, "weight_percent": 50}, {"version_id": foreign.pk, "weight_percent": 50}]
    response = create(api_client_for(owner), arms=arms)
    assert response.status_code == 400
    assert f"version id {foreign.pk} belongs to another model" in response.json()["detail"]
    assert counts() == (0, 0)


def test_create__an_arm_that_runs_on_no_targeted_device_type__is_refused_naming_them(owner, model, versions):
    ready_version(model, seed=4, opset=21)  # v3: onnxruntime 1.16 on raspberry-pi-4 cannot run opset 21
    arms = [{"version": 1, "weight_percent": 50}, {"version": 3, "weight_percent": 50}]
    response = create(api_client_for(owner), arms=arms, target={"device_types": ["raspberry-pi-4"]})
    assert response.status_code == 400
    assert "version 3 cannot run on any targeted device type (raspberry-pi-4)" in response.json()["detail"]
    assert counts() == (0, 0)


def test_start__two_running_experiments_over_overlapping_devices__second_is_refused(owner, versions):
    client = api_client_for(owner)
    first = create(client).json()["id"]
    second = create(client, name="again", target={"device_types": ["x86-gateway"], "regions": ["DE"]}).json()["id"]
    assert client.post(f"{BASE}{first}/start/").status_code == 200
    response = client.post(f"{BASE}{second}/start/")
    assert response.status_code == 409
    assert "faster-mlp" in response.json()["detail"] and "is running on devices this target reaches" in str(
        response.json()
    )
    assert Experiment.objects.get(pk=second).state == "draft"


def test_start__disjoint_targets__both_run(owner, versions):
    client = api_client_for(owner)
    first = create(client).json()["id"]
    second = create(client, name="pi", target={"device_types": ["raspberry-pi-4"]}).json()["id"]
    assert client.post(f"{BASE}{first}/start/").status_code == 200
    assert client.post(f"{BASE}{second}/start/").status_code == 200


def test_viewer_cannot_create_or_start(viewer, versions):
    assert create(api_client_for(viewer)).status_code == 403
    assert counts() == (0, 0)


# -- assignment and counting ---------------------------------------------------------------------------------


def _enroll_devices(key, n, **config):
    devices = []
    for i in range(n):
        response, sent = enroll(key, device_id=f"dev-{i}", **config)
        assert response.status_code == 201, response.content
        devices.append((f"dev-{i}", device_client(response.json()["device_token"]), sent))
    return devices


def _event(kind, version_id, **stats):
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "model": "digit-classifier",
        "version_id": version_id,
        "at": datetime.now(UTC).isoformat(),
        "stats": stats,
    }


def test_running_experiment__check_in_serves_each_device_its_sticky_arm_and_reports_count_per_arm(
    owner, enrollment_key, model, versions
):
    v1, v2 = versions
    client = api_client_for(owner)
    experiment_id = create(client).json()["id"]
    client.post(f"{BASE}{experiment_id}/start/")
    experiment = Experiment.objects.get()
    arms = list(experiment.arms.order_by("position"))
    devices = _enroll_devices(enrollment_key, 6)
    served = {}
    for device_id, api, config in devices:
        answer = checkin(api, config)
        assert answer.status_code == 200, answer.content
        served[device_id] = answer.json()["models"]["digit-classifier"]["manifest"]["version_id"]
        expected = arms[0] if bucket(experiment.salt, device_id) < arms[0].weight_bp else arms[1]
        assert served[device_id] == expected.version_id
        state = DeviceModelState.objects.get(device__device_id=device_id)
        assert state.resolution == "experiment" and state.status == "assigned"
    for device_id, api, _ in devices:
        version_id = served[device_id]
        other = v2.pk if version_id == v1.pk else v1.pk
        batch = [
            _event("install_succeeded", version_id),
            _event("inference_stats", version_id, count=10, latency_ms_mean=5.0, latency_ms_p50=5.0),
            _event("inference_stats", other, count=10, latency_ms_mean=99.0),  # not its arm's version: not counted
        ]
        assert api.post("/api/device/v1/events", {"events": batch}, format="json").status_code == 200
    assert ExperimentEnrollment.objects.filter(experiment=experiment).count() == 6
    per_arm = {arm.pk: 0 for arm in arms}
    for rollup in ExperimentRollup.objects.filter(experiment=experiment):
        per_arm[rollup.arm_id] += rollup.latency_n
        assert rollup.latency_sum == 5.0 * rollup.latency_n
    expected_per_arm = {arm.pk: sum(1 for v in served.values() if v == arm.version_id) for arm in arms}
    assert per_arm == expected_per_arm

    results = client.get(f"{BASE}{experiment_id}/results/").json()
    assert [a["devices"] for a in results["arms"]] == [expected_per_arm[arm.pk] for arm in arms]
    assert results["arms"][0]["metrics"][0]["quantiles"]["p50"] == pytest.approx(5.0, rel=0.02)

    # Stopping ends assignment: the next check-in resolves by rules and default again.
    assert client.post(f"{BASE}{experiment_id}/stop/", {"reason": "done"}, format="json").status_code == 200
    device_id, api, config = devices[0]
    assert checkin(api, config).json()["models"]["digit-classifier"]["status"] == "none"
    assert DeviceModelState.objects.get(device__device_id=device_id).resolution != "experiment"


def test_a_device_whose_type_cannot_run_an_arm__is_not_enrolled_nor_served_a_fallback(
    owner, enrollment_key, model, versions
):
    v3 = ready_version(model, seed=5, opset=21)  # raspberry-pi-4 cannot run it
    client = api_client_for(owner)
    arms = [{"version": 1, "weight_percent": 50}, {"version": 3, "weight_percent": 50}]
    experiment_id = create(client, arms=arms, target={"device_types": ["x86-gateway", "raspberry-pi-4"]}).json()["id"]
    assert client.post(f"{BASE}{experiment_id}/start/").status_code == 200
    response, config = enroll(
        enrollment_key, device_id="pi-1", device_type="raspberry-pi-4", runtime_version="1.16.3", cpu_arch="arm64"
    )
    assert response.status_code == 201, response.content
    api = device_client(response.json()["device_token"])
    answer = checkin(api, config).json()["models"]["digit-classifier"]
    assert answer["status"] == "none"  # no default, no rule: nothing, never v3's fallback
    state = DeviceModelState.objects.get(device__device_id="pi-1")
    assert state.resolution != "experiment"
    batch = [_event("download_failed", v3.pk)]
    assert api.post("/api/device/v1/events", {"events": batch}, format="json").status_code == 200
    enrollment = ExperimentEnrollment.objects.get(device__device_id="pi-1")
    assert enrollment.arm is None
    assert client.get(f"{BASE}{experiment_id}/results/").json()["ineligible_devices"] == 1


# -- feedback ----------------------------------------------------------------------------------------------


def test_feedback__for_a_version_never_served__is_refused_and_nothing_stored(enrolled, device_api, versions):
    v1, _ = versions
    batch = [
        _event("inference_stats", v1.pk, count=1, latency_ms_mean=1.0),
        _event("feedback", v1.pk, prediction=1, label=2),
    ]
    # Ran v1 in this very batch: served.
    assert device_api.post("/api/device/v1/events", {"events": batch}, format="json").status_code == 200
    _, v2 = versions
    before = Device.objects.get().events.count()
    response = device_api.post(
        "/api/device/v1/events", {"events": [_event("feedback", v2.pk, prediction=1, label=1)]}, format="json"
    )
    assert response.status_code == 400
    assert f"about version {v2.pk}, which this device was never served" in response.json()["detail"]
    assert Device.objects.get().events.count() == before


@pytest.mark.parametrize(
    ("stats", "message"),
    [
        ({"prediction": 1, "label": "cat"}, "stats.label is a str but stats.prediction is a int"),
        ({"prediction": 1, "label": 1.5}, "stats.label is a float"),
        ({"prediction": True, "label": True}, "stats.prediction is a boolean"),
        ({"prediction": 1}, "stats.label is missing"),
    ],
)
def test_feedback__labels_of_the_wrong_type__are_refused(enrolled, device_api, versions, stats, message):
    v1, _ = versions
    before = Device.objects.get().events.count()
    response = device_api.post("/api/device/v1/events", {"events": [_event("feedback", v1.pk, **stats)]}, format="json")
    assert response.status_code == 400
    assert message in str(response.json())
    assert Device.objects.get().events.count() == before


# -- promote -----------------------------------------------------------------------------------------------


def test_promote__proposes_a_draft_rollout_of_the_winner_and_stops_the_experiment(owner, versions):
    client = api_client_for(owner)
    experiment_id = create(client).json()["id"]
    client.post(f"{BASE}{experiment_id}/start/")
    winner = ExperimentArm.objects.get(position=1)
    response = client.post(f"{BASE}{experiment_id}/promote/", {"arm": winner.pk}, format="json")
    assert response.status_code == 201, response.content
    rollout = Rollout.objects.get()
    assert rollout.state == "draft" and rollout.version_id == winner.version_id
    assert rollout.target == {"device_types": ["x86-gateway"]}
    experiment = Experiment.objects.get()
    assert experiment.state == "stopped" and experiment.promoted_rollout_id == rollout.pk
    again = client.post(f"{BASE}{experiment_id}/promote/", {"arm": winner.pk}, format="json")
    assert again.status_code == 409
    assert Rollout.objects.count() == 1


def test_promote__the_control__is_refused(owner, versions):
    client = api_client_for(owner)
    experiment_id = create(client).json()["id"]
    client.post(f"{BASE}{experiment_id}/start/")
    control = ExperimentArm.objects.get(position=0)
    response = client.post(f"{BASE}{experiment_id}/promote/", {"arm": control.pk}, format="json")
    assert response.status_code == 400
    assert "is the control" in response.json()["detail"]
    assert Rollout.objects.count() == 0


def test_audit_log__records_creation_start_and_arms_with_the_actor_and_project(owner, project, versions):
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    client = api_client_for(owner)
    experiment_id = create(client).json()["id"]
    client.post(f"{BASE}{experiment_id}/start/")
    entries = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Experiment)).order_by("pk")
    assert [e.action for e in entries] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
    assert entries.last().changes_dict["state"] == ["draft", "running"]
    assert all(e.actor == owner and e.additional_data["project_id"] == project.pk for e in entries)
    arms = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(ExperimentArm))
    assert arms.count() == 2
