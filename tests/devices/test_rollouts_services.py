"""The rollout lifecycle through its services: four eyes, the checks before approval, and each refusal."""

from __future__ import annotations

import pytest
from django.core import mail

from console.errors import Refused
from console.models import ModelVersion
from console.projects import roles
from console.projects import services as project_services
from devices.models import Rollout, RolloutApproval
from devices.rollouts import services
from tests.conftest import make_mlp
from tests.devices.fleet_helpers import ready_version
from tests.jobs.helpers import uploaded_version

pytestmark = pytest.mark.django_db

STAGES = [
    {"percent": 1, "dwell_minutes": 60},
    {"percent": 10, "dwell_minutes": 60},
    {"percent": 50, "dwell_minutes": 60},
    {"percent": 100, "dwell_minutes": 60},
]
GATEWAYS = {"device_types": ["x86-gateway"]}


@pytest.fixture
def versions(model):
    """v1 is the model's default (what a rollback returns to); v2 is what the rollouts ship."""
    v1 = ready_version(model, seed=1)
    v2 = ready_version(model, seed=2)
    model.default_version = v1
    model.save(update_fields=["default_version"])
    return v1, v2


@pytest.fixture
def draft(model, versions, teammate):
    return services.propose_rollout(model=model, version=versions[1], user=teammate, target=GATEWAYS, stages=STAGES)


def _submitted(rollout, user):
    return services.submit_rollout(rollout=rollout, user=user)


def _state(rollout) -> str:
    return Rollout.objects.get(pk=rollout.pk).state


def test_lifecycle__propose_submit_approve_start_pause_resume_rollback(
    draft, versions, teammate, approver, django_capture_on_commit_callbacks
):
    approver.email = "amy@example.com"
    approver.save()
    assert draft.state == Rollout.State.DRAFT and draft.previous_version == versions[0]
    with django_capture_on_commit_callbacks(execute=True):
        rollout = _submitted(draft, teammate)
    assert rollout.state == Rollout.State.PENDING_APPROVAL
    assert [m.to for m in mail.outbox] == [["amy@example.com"]]
    assert f"rollout {rollout.pk}" in mail.outbox[0].subject
    # The mail links the approval page, at the address people reach the console by.
    link = f"http://127.0.0.1:8000/p/{rollout.project.slug}/m/{rollout.model.name}/rollouts/{rollout.pk}/approval/"
    assert mail.outbox[0].body.endswith(link)
    rollout = services.approve_rollout(
        rollout=rollout, user=approver, comment="looks good", fingerprint=rollout.fingerprint
    )
    assert rollout.state == Rollout.State.APPROVED
    assert services.current_approval(rollout).comment == "looks good"
    rollout = services.start_rollout(rollout=rollout, user=teammate)
    assert (rollout.state, rollout.current_stage) == (Rollout.State.RUNNING, 0)
    assert rollout.started_at is not None and rollout.stage_started_at == rollout.started_at
    assert services.pause_rollout(rollout=rollout, user=teammate).state == Rollout.State.PAUSED
    assert services.resume_rollout(rollout=rollout, user=teammate).state == Rollout.State.RUNNING
    rollout = services.rollback_rollout(rollout=rollout, user=teammate)
    assert rollout.state == Rollout.State.ROLLED_BACK and rollout.ended_at is not None


def test_each_rollout__gets_its_own_salt(model, versions, teammate, draft):
    other = services.propose_rollout(model=model, version=versions[1], user=teammate, stages=STAGES)
    assert draft.salt != other.salt and draft.salt.startswith("rollout:")


def test_approving_your_own_rollout__is_refused(draft, project, teammate):
    # Even a proposer whose role may approve (made owner here) may not sign off their own plan.
    rollout = _submitted(draft, teammate)
    project_services.set_member(project=project, user=teammate, role=roles.OWNER)
    with pytest.raises(services.NotAllowed, match="four eyes"):
        services.approve_rollout(rollout=rollout, user=teammate)
    assert _state(rollout) == Rollout.State.PENDING_APPROVAL and not RolloutApproval.objects.exists()


@pytest.mark.parametrize("who", ["viewer", "outsider"])
def test_approving_without_the_approver_role__is_refused(draft, teammate, who, request):
    rollout = _submitted(draft, teammate)
    with pytest.raises(services.NotAllowed, match="only an approver or owner"):
        services.approve_rollout(rollout=rollout, user=request.getfixturevalue(who))
    assert _state(rollout) == Rollout.State.PENDING_APPROVAL


def test_developer_who_is_not_the_proposer__may_not_approve(draft, teammate, django_user_model, project):
    other_dev = django_user_model.objects.create_user(username="dev-two")
    project_services.set_member(project=project, user=other_dev, role=roles.DEVELOPER)
    rollout = _submitted(draft, teammate)
    with pytest.raises(services.NotAllowed, match="developer"):
        services.approve_rollout(rollout=rollout, user=other_dev)


def test_owner_who_did_not_propose__may_approve(draft, teammate, owner):
    rollout = services.approve_rollout(rollout=_submitted(draft, teammate), user=owner)
    assert rollout.state == Rollout.State.APPROVED


def test_reject__needs_a_comment(draft, teammate, approver):
    rollout = _submitted(draft, teammate)
    with pytest.raises(Refused, match="comment"):
        services.reject_rollout(rollout=rollout, user=approver, comment="  ")
    assert _state(rollout) == Rollout.State.PENDING_APPROVAL
    rollout = services.reject_rollout(rollout=rollout, user=approver, comment="too fast")
    assert rollout.state == Rollout.State.REJECTED


def test_changing_the_version_after_approval__voids_it(draft, model, teammate, approver):
    rollout = services.approve_rollout(rollout=_submitted(draft, teammate), user=approver)
    seen = rollout.fingerprint
    v3 = ready_version(model, seed=3)
    rollout = services.edit_rollout(rollout=rollout, user=teammate, version=v3)
    assert rollout.state == Rollout.State.PENDING_APPROVAL and services.current_approval(rollout) is None
    with pytest.raises(services.WrongState, match="only a rollout that is approved can start"):
        services.start_rollout(rollout=rollout, user=teammate)
    # An approver who looked at the old plan cannot approve the new one by mistake.
    with pytest.raises(services.WrongState, match="changed after you opened it"):
        services.approve_rollout(rollout=rollout, user=approver, fingerprint=seen)
    assert _state(rollout) == Rollout.State.PENDING_APPROVAL


def test_editor_of_the_plan__may_not_approve_it_either(draft, teammate, owner):
    rollout = _submitted(draft, teammate)
    rollout = services.edit_rollout(rollout=rollout, user=owner, stages=[{"percent": 100, "dwell_minutes": 5}])
    with pytest.raises(services.NotAllowed, match="last changed"):
        services.approve_rollout(rollout=rollout, user=owner)


def test_approval_made_void_behind_the_services_back__stops_start(draft, model, teammate, approver):
    rollout = services.approve_rollout(rollout=_submitted(draft, teammate), user=approver)
    Rollout.objects.filter(pk=rollout.pk).update(stages=[{"percent": 100, "dwell_minutes": 5}])
    with pytest.raises(services.WrongState, match="approval is void"):
        services.start_rollout(rollout=rollout, user=teammate)
    assert _state(rollout) == Rollout.State.APPROVED


def test_second_rollout_over_overlapping_target__names_the_first(draft, model, versions, teammate, approver):
    first = services.start_rollout(
        rollout=services.approve_rollout(rollout=_submitted(draft, teammate), user=approver), user=teammate
    )
    second = services.propose_rollout(
        model=model, version=versions[1], user=teammate, target={"regions": ["DE"]}, stages=STAGES
    )
    with pytest.raises(services.Overlap, match=f"rollout {first.pk} of digit-classifier"):
        _submitted(second, teammate)
    assert _state(second) == Rollout.State.DRAFT
    disjoint = services.propose_rollout(
        model=model, version=versions[1], user=teammate, target={"device_types": ["jetson-orin"]}, stages=STAGES
    )
    assert _submitted(disjoint, teammate).state == Rollout.State.PENDING_APPROVAL


@pytest.mark.parametrize(
    ("stages", "words"),
    [
        ([{"percent": 10, "dwell_minutes": 5}, {"percent": 5, "dwell_minutes": 5}], "below the stage before"),
        ([{"percent": 10, "dwell_minutes": 5}, {"percent": 10, "dwell_minutes": 5}], "repeats"),
        ([{"percent": 10, "dwell_minutes": 5}, {"percent": 110, "dwell_minutes": 5}], "at most 100"),
        ([{"percent": 100, "dwell_minutes": 0}], "dwell_minutes"),
    ],
)
def test_bad_stages__are_refused_and_nothing_is_saved(model, versions, teammate, stages, words):
    with pytest.raises(Refused, match=words):
        services.propose_rollout(model=model, version=versions[1], user=teammate, stages=stages)
    assert not Rollout.objects.exists()


def test_threshold_out_of_range__is_refused_on_edit_and_the_plan_stays(draft, teammate):
    with pytest.raises(Refused, match="max_install_failure_rate"):
        services.edit_rollout(rollout=draft, user=teammate, max_install_failure_rate=2.0)
    assert Rollout.objects.get(pk=draft.pk).max_install_failure_rate == draft.max_install_failure_rate


def test_unchecked_and_failed_versions__are_refused_at_submit(model, versions, teammate):
    unchecked = uploaded_version(model, make_mlp(seed=7).SerializeToString())
    assert unchecked.state == ModelVersion.State.CHECKING
    rollout = services.propose_rollout(model=model, version=unchecked, user=teammate, stages=STAGES)
    with pytest.raises(Refused, match="has not been checked yet"):
        _submitted(rollout, teammate)
    ModelVersion.objects.filter(pk=unchecked.pk).update(state=ModelVersion.State.FAILED)
    rollout.version.refresh_from_db()
    with pytest.raises(Refused, match="failed its check"):
        _submitted(rollout, teammate)
    assert _state(rollout) == Rollout.State.DRAFT


def test_incompatible_version__names_the_device_types_and_those_it_runs_on(model, versions, teammate):
    opset21 = ready_version(model, seed=9, opset=21)  # raspberry-pi-4 runs onnxruntime 1.16: opset 20 at most
    rollout = services.propose_rollout(
        model=model,
        version=opset21,
        user=teammate,
        target={"device_types": ["raspberry-pi-4", "x86-gateway"]},
        stages=STAGES,
    )
    with pytest.raises(Refused, match=r"cannot run on raspberry-pi-4 .*Restrict .*: x86-gateway\."):
        _submitted(rollout, teammate)
    assert _state(rollout) == Rollout.State.DRAFT


def test_rollback_without_previous_version__is_refused(model, teammate, approver):
    only = ready_version(model, seed=4)  # no default version: devices ran nothing of this model before
    rollout = services.propose_rollout(model=model, version=only, user=teammate, target=GATEWAYS, stages=STAGES)
    rollout = services.start_rollout(
        rollout=services.approve_rollout(rollout=_submitted(rollout, teammate), user=approver), user=teammate
    )
    with pytest.raises(Refused, match="no previous version"):
        services.rollback_rollout(rollout=rollout, user=teammate)
    assert _state(rollout) == Rollout.State.RUNNING


def test_resuming_a_completed_rollout__is_refused(draft, teammate, approver):
    rollout = services.start_rollout(
        rollout=services.approve_rollout(rollout=_submitted(draft, teammate), user=approver), user=teammate
    )
    Rollout.objects.filter(pk=rollout.pk).update(state=Rollout.State.COMPLETED)  # the beat task's move (item 4)
    with pytest.raises(services.WrongState, match="already reached every targeted device"):
        services.resume_rollout(rollout=rollout, user=teammate)
    assert _state(rollout) == Rollout.State.COMPLETED


def test_running_rollout__cannot_be_edited(draft, teammate, approver):
    rollout = services.start_rollout(
        rollout=services.approve_rollout(rollout=_submitted(draft, teammate), user=approver), user=teammate
    )
    with pytest.raises(services.WrongState, match="can no longer change"):
        services.edit_rollout(rollout=rollout, user=teammate, stages=[{"percent": 100, "dwell_minutes": 5}])


def test_rollout_and_its_approval__are_in_the_audit_log(draft, teammate, approver):
    from auditlog.models import LogEntry

    rollout = services.approve_rollout(rollout=_submitted(draft, teammate), user=approver, comment="fine")
    states = [
        entry.changes_dict.get("state")
        for entry in LogEntry.objects.get_for_object(rollout).order_by("timestamp", "pk")
        if "state" in entry.changes_dict
    ]
    assert states[-2:] == [["draft", "pending_approval"], ["pending_approval", "approved"]]
    approval = services.current_approval(rollout)
    entry = LogEntry.objects.get_for_object(approval).get()
    assert entry.additional_data["project_id"] == rollout.project_id
