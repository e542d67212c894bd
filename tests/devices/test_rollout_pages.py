"""Rollout pages in the browser's shape: the list, the propose form, a rollout's page with its actions and
figures, and the approval page (four eyes), for each role."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from devices.models import DailyRollup, DeviceModelState, DeviceType, Rollout, RolloutApproval
from devices.rollouts import progress
from devices.rollouts import services as rollout_services
from tests.devices.fleet_helpers import enroll, ready_version

pytestmark = pytest.mark.django_db

BASE = "/p/kiosk/m/digit-classifier/rollouts/"
STAGES = [{"percent": 10, "dwell_minutes": 60}, {"percent": 100, "dwell_minutes": 30}]
FORM = {
    "version": 2,
    "device_types": ["x86-gateway"],
    "stages": "10 60\n100 30",
    "max_download_failure_rate": 0.05,
    "max_install_failure_rate": 0.05,
    "max_latency_regression": 0.2,
    "min_devices_per_stage": 20,
    "rate_growth_factor": 2,
}


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def versions(model):
    v1 = ready_version(model)
    v2 = ready_version(model, seed=2)
    model.default_version = v1
    model.save(update_fields=["default_version"])
    return v1, v2


@pytest.fixture
def pending(versions, model, teammate):
    rollout = rollout_services.propose_rollout(
        model=model, version=versions[1], user=teammate, target={"device_types": ["x86-gateway"]}, stages=STAGES
    )
    return rollout_services.submit_rollout(rollout=rollout, user=teammate)


def _url(rollout: Rollout, tail: str = "") -> str:
    return f"{BASE}{rollout.pk}/{tail}"


# -- the list ------------------------------------------------------------------------------------------------


def test_list__viewer_sees_rollouts_without_the_propose_link_and_outsider_gets_404(pending, viewer, outsider):
    page = browser(viewer).get(BASE)

    assert page.status_code == 200
    body = page.content.decode()
    assert f'href="{_url(pending)}"' in body
    assert "Pending approval" in body and "type in x86-gateway" in body and "10% → 100%" in body
    assert 'id="propose-link"' not in body
    assert browser(outsider).get(BASE).status_code == 404


def test_list__model_page_links_to_it(versions, viewer):
    assert f'href="{BASE}"' in browser(viewer).get("/p/kiosk/m/digit-classifier/").content.decode()


# -- propose -------------------------------------------------------------------------------------------------


def test_propose__developer_makes_a_draft_with_the_plan_as_typed(versions, teammate):
    answer = browser(teammate).post(BASE + "new/", {**FORM, "max_devices_per_minute": 50})

    rollout = Rollout.objects.get()
    assert answer.status_code == 302 and answer["Location"] == _url(rollout)
    assert (rollout.state, rollout.version, rollout.previous_version) == ("draft", versions[1], versions[0])
    assert rollout.target == {"device_types": ["x86-gateway"]}
    assert rollout.stages == STAGES
    assert (rollout.max_devices_per_minute, rollout.proposer) == (50, teammate)


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ("10 60\n5 60\n100 60", "5% is below the stage before"),
        ("10 60\n10 60\n100 60", "repeats the stage before"),
        ("10 60\n50 60", "it must be 100%"),
        ("10 0\n100 60", "dwell_minutes 0 must be a whole number of minutes from 1"),
        ("ten sixty", "is not a percent and a whole number of minutes"),
    ],
)
def test_propose__bad_stages__shown_on_the_form_and_nothing_saved(versions, teammate, stages, message):
    answer = browser(teammate).post(BASE + "new/", {**FORM, "stages": stages})

    assert answer.status_code == 400
    assert message in answer.content.decode()
    assert not Rollout.objects.exists()


def test_propose__threshold_out_of_range__shown_and_nothing_saved(versions, teammate):
    answer = browser(teammate).post(BASE + "new/", {**FORM, "max_download_failure_rate": 1.5})

    assert answer.status_code == 400
    assert "max_download_failure_rate 1.5 must be a fraction from 0 to 1" in answer.content.decode()
    assert not Rollout.objects.exists()


def test_propose__viewer_and_approver_get_403(versions, viewer, approver):
    assert browser(viewer).post(BASE + "new/", FORM).status_code == 403
    assert browser(approver).post(BASE + "new/", FORM).status_code == 403
    assert not Rollout.objects.exists()


# -- the rollout page ----------------------------------------------------------------------------------------


def test_rollout_page__developer_submits_from_the_page(versions, model, teammate):
    draft = rollout_services.propose_rollout(model=model, version=versions[1], user=teammate, stages=STAGES)
    client = browser(teammate)
    assert 'id="action-submit"' in client.get(_url(draft)).content.decode()

    answer = client.post(_url(draft), {"action": "submit"}, follow=True)

    draft.refresh_from_db()
    assert draft.state == Rollout.State.PENDING_APPROVAL
    assert 'id="approval-link"' in answer.content.decode()


def test_rollout_page__viewer_sees_state_but_no_buttons_and_cannot_act(pending, viewer):
    client = browser(viewer)
    page = client.get(_url(pending)).content.decode()

    assert "Pending approval" in page and 'id="no-actions"' in page
    assert 'id="action-' not in page
    assert client.post(_url(pending), {"action": "pause"}).status_code == 403


def test_rollout_page__refused_action_shows_the_services_sentence_and_changes_nothing(pending, teammate):
    answer = browser(teammate).post(_url(pending), {"action": "start"}, follow=True)

    assert "only a rollout that is approved can start. It waits for an approver." in answer.content.decode()
    pending.refresh_from_db()
    assert pending.state == Rollout.State.PENDING_APPROVAL


def test_rollout_page__halted__says_why_prominently_and_offers_resume_and_rollback(pending, approver, teammate):
    rollout_services.approve_rollout(rollout=pending, user=approver, comment="ok")
    rollout_services.start_rollout(rollout=pending, user=teammate)
    reason = "download failure rate 30% (6 of 20) crossed the threshold 5% in stage 1"
    Rollout.objects.filter(pk=pending.pk).update(state=Rollout.State.HALTED, halt_reason=reason)

    page = browser(teammate).get(_url(pending)).content.decode()

    assert 'id="halt-reason"' in page and reason in page
    assert 'id="action-resume"' in page and 'id="action-rollback"' in page
    assert 'id="action-start"' not in page and 'id="action-pause"' not in page


def test_rollout_page__figures_per_stage_from_device_states(
    pending, approver, teammate, model, enrollment_key, versions
):
    cache.clear()
    for index in range(12):
        assert enroll(enrollment_key, device_id=f"gw-{index}")[0].status_code == 201
    enroll(enrollment_key, device_id="pi-0", device_type="raspberry-pi-4")  # outside the target
    rollout_services.approve_rollout(rollout=pending, user=approver, comment="ok")
    rollout_services.start_rollout(rollout=pending, user=teammate)
    gateways = list(pending.project.devices.filter(device_type__slug="x86-gateway").order_by("device_id"))
    now = timezone.now()
    # Every gateway was offered v2; four installed it, one failed.
    for index, device in enumerate(gateways):
        DeviceModelState.objects.create(
            device=device,
            model=model,
            desired_version=versions[1],
            status="assigned",
            resolution="rule",
            installed_version=versions[1] if index < 5 else versions[0],
            installed_state="failed" if index == 4 else "running",
            resolved_at=now,
        )
    first = {device.pk for device in gateways if progress.stage_of(pending, device.device_id) == 0}

    figures = browser(teammate).get(_url(pending)).context["progress"]

    assert (figures.devices, figures.targeted) == (13, 12)
    assert [s.targeted for s in figures.stages] == [len(first), 12 - len(first)]
    assert sum(s.offered for s in figures.stages) == 12
    assert sum(s.installed for s in figures.stages) == 4
    assert sum(s.failed for s in figures.stages) == 1


def test_rollout_page__health_against_thresholds_from_the_rollups(pending, approver, teammate, model, versions):
    rollout_services.approve_rollout(rollout=pending, user=approver, comment="ok")
    rollout_services.start_rollout(rollout=pending, user=teammate)
    gateway = DeviceType.objects.get(slug="x86-gateway")
    DailyRollup.objects.create(
        project=pending.project,
        day=timezone.now().date(),
        model=model,
        version=versions[1],
        device_type=gateway,
        region="DE",
        download_started=40,
        download_completed=32,
        download_failed=8,
        install_succeeded=32,
    )

    page = browser(teammate).get(_url(pending))
    checks = {c.name: c for c in page.context["health"]}

    assert checks["download_failure_rate"].value == pytest.approx(0.2)
    assert checks["download_failure_rate"].crossed
    assert not checks["install_failure_rate"].crossed
    # The page says what the beat would: the same rule and the same sentence as a halt reason.
    assert "download failures 20% (8 of 40) &gt; 5%" in page.content.decode()


def test_rollout_page__stages_over_time_chart_table_and_csv(pending, approver, teammate):
    rollout_services.approve_rollout(rollout=pending, user=approver, comment="ok")
    started = rollout_services.start_rollout(rollout=pending, user=teammate)
    client = browser(teammate)

    page = client.get(_url(pending)).content.decode()
    csv_answer = client.get(_url(pending, "stages.csv"))

    assert 'id="timeline-chart"' in page and 'id="timeline-table"' in page and "timeline-data" in page
    lines = csv_answer.content.decode().splitlines()
    assert lines[0] == "stage,percent,dwell_minutes,started_at,earliest_start"
    assert lines[1].startswith(f"1,10,60,{started.started_at.isoformat()},")
    earliest = (started.started_at + timedelta(minutes=60)).isoformat()
    assert lines[2] == f"2,100,30,,{earliest}"


def test_rollout_page__audit_trail_and_approvals(pending, approver, teammate):
    rollout_services.approve_rollout(rollout=pending, user=approver, comment="looks fine")

    page = browser(teammate).get(_url(pending))

    body = page.content.decode()
    assert "looks fine" in body and "amy-approver" in body
    assert [r["action"] for r in page.context["audit"]][-1] == "create"
    assert any("state" in r["changes"] for r in page.context["audit"])
    assert f"?kind=rollout&amp;object_id={pending.pk}" in body


# -- the approval page ---------------------------------------------------------------------------------------


def test_approval_page__approver_sees_everything_to_judge_and_the_buttons(pending, approver, enrollment_key):
    cache.clear()
    for index in range(5):
        enroll(enrollment_key, device_id=f"gw-{index}")
    page = browser(approver).get(_url(pending, "approval/"))

    body = page.content.decode()
    assert page.status_code == 200
    assert 'id="compat-matrix"' in body and "raspberry-pi-4" in body
    assert 'id="benchmarks"' in body and "file size" in body and "agreement with the version it replaces" in body
    assert [s.devices for s in page.context["reach"]][-1] == 5
    assert 'id="thresholds"' in body
    assert 'id="approve-button"' in body and 'id="reject-button"' in body
    assert f'value="{pending.fingerprint}"' in body


def test_approval_page__proposer_and_developer_see_why_not(pending, teammate):
    page = browser(teammate).get(_url(pending, "approval/")).content.decode()

    assert 'id="approve-button"' not in page
    assert "You proposed rollout" in page and "(four eyes)" in page
    assert browser(teammate).post(_url(pending, "approval/"), {"decision": "approve"}).status_code == 403


def test_approval_page__viewer_sees_the_plan_but_no_buttons_and_gets_403(pending, viewer):
    page = browser(viewer).get(_url(pending, "approval/")).content.decode()

    assert "Your role in this project is viewer" in page and 'id="approve-button"' not in page
    post = browser(viewer).post(_url(pending, "approval/"), {"decision": "approve", "fingerprint": pending.fingerprint})
    assert post.status_code == 403


def test_approval_page__approve_with_a_comment(pending, approver):
    answer = browser(approver).post(
        _url(pending, "approval/"), {"decision": "approve", "comment": "ship it", "fingerprint": pending.fingerprint}
    )

    assert answer.status_code == 302
    pending.refresh_from_db()
    assert pending.state == Rollout.State.APPROVED
    decision = RolloutApproval.objects.get()
    assert (decision.approver.username, decision.comment, decision.decision) == ("amy-approver", "ship it", "approve")


def test_approval_page__plan_changed_meanwhile__refused_clearly_and_shown_again(pending, approver, teammate):
    seen = pending.fingerprint
    rollout_services.edit_rollout(rollout=pending, user=teammate, stages=[{"percent": 100, "dwell_minutes": 5}])

    answer = browser(approver).post(
        _url(pending, "approval/"), {"decision": "approve", "comment": "ok", "fingerprint": seen}
    )

    assert answer.status_code == 400
    body = answer.content.decode()
    assert "plan changed after you opened it" in body
    pending.refresh_from_db()
    assert pending.state == Rollout.State.PENDING_APPROVAL
    assert f'value="{pending.fingerprint}"' in body  # the plan as it stands now, for a second look
    assert not RolloutApproval.objects.exists()


def test_approval_page__reject_without_comment__refused(pending, approver):
    answer = browser(approver).post(
        _url(pending, "approval/"), {"decision": "reject", "fingerprint": pending.fingerprint}
    )

    assert answer.status_code == 400
    assert "Say why in a comment when rejecting" in answer.content.decode()
    pending.refresh_from_db()
    assert pending.state == Rollout.State.PENDING_APPROVAL


def test_approval_page__repeats_the_impact_warning(versions, model, teammate, approver, enrollment_key):
    cache.clear()
    v3 = ready_version(model, seed=3, opset=21)
    enroll(enrollment_key, device_id="pi-0", device_type="raspberry-pi-4")
    draft = rollout_services.propose_rollout(
        model=model, version=v3, user=teammate, target={"device_types": ["raspberry-pi-4"]}, stages=STAGES
    )

    page = browser(approver).get(_url(draft, "approval/")).content.decode()

    assert 'id="approval-impact"' in page
    assert "1 enrolled device of that type gets nothing new" in page


def test_stage_times__read_the_beat_tasks_stage_history_when_the_rollout_keeps_one(versions, model, teammate):
    rollout = rollout_services.propose_rollout(model=model, version=versions[1], user=teammate, stages=STAGES)
    rollout.stage_history = [
        {"started_at": "2026-01-01T10:00:00+00:00", "devices": 3},
        {"started_at": "2026-01-01T11:00:00+00:00", "devices": 30},
    ]

    times = progress.stage_times(rollout)

    assert [t.isoformat() for t, _ in times] == ["2026-01-01T10:00:00+00:00", "2026-01-01T11:00:00+00:00"]
    assert [figures for _, figures in times] == [{"devices": 3}, {"devices": 30}]
