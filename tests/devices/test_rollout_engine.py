"""The beat's engine on PostgreSQL: advance after the dwell, halt by itself on each threshold with its figures,
min devices, completion, the rate cap, and two beat runs at once never skipping or doubling a stage."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.conf import settings
from django.db import connection

from devices.models import FleetSettings, Rollout, TargetingRule
from devices.rollouts import engine, services, tasks
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import device_client, enroll, ready_version
from tests.devices.rollout_engine_helpers import STAGES, report, report_latency, running_rollout

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(model):
    v1 = ready_version(model, seed=1)
    v2 = ready_version(model, seed=2)
    model.default_version = v1
    model.save(update_fields=["default_version"])
    return v1, v2


@pytest.fixture
def reporter(enrollment_key):
    """One enrolled device whose reports the tests inject (the figures count outcomes, not devices): (device
    row, token, config)."""
    from devices.models import Device

    response, config = enroll(enrollment_key, device_id="reporter")
    assert response.status_code == 201
    return Device.objects.get(device_id="reporter"), response.json()["device_token"], config


@pytest.fixture
def device(reporter):
    return reporter[0]


@pytest.fixture
def rollout(model, versions, teammate, approver, device):
    return running_rollout(model, versions[1], proposer=teammate, approver=approver, min_devices_per_stage=20)


def _fresh(rollout) -> Rollout:
    return Rollout.objects.get(pk=rollout.pk)


def _generation(project) -> str:
    return FleetSettings.objects.get(project=project).plan_generation


def test_start__opens_stage_one_at_its_percent_with_a_history_entry(rollout):
    assert (rollout.current_stage, rollout.offered_percent) == (0, 10.0)
    [entry] = rollout.stage_history
    assert (entry["stage"], entry["percent"], entry["outcome"]) == (0, 10.0, None)


def test_beat__waits_for_the_dwell_then_advances_one_stage_and_starts_a_new_plan_generation(rollout, project):
    start = rollout.stage_started_at
    before = _generation(project)

    assert engine.step_rollouts(start + timedelta(minutes=59)) == {"wait": 1}
    assert _generation(project) == before  # the figures it wrote are no input of check-in
    assert engine.step_rollouts(start + timedelta(minutes=60)) == {"advance": 1}

    advanced = _fresh(rollout)
    assert (advanced.state, advanced.current_stage, advanced.offered_percent) == ("running", 1, 50.0)
    assert advanced.stage_started_at == start + timedelta(minutes=60)
    assert [(e["stage"], e["outcome"]) for e in advanced.stage_history] == [(0, "advanced"), (1, None)]
    assert _generation(project) != before


@pytest.mark.parametrize(
    ("counts", "words"),
    [
        ({"download_completed": 44, "download_failed": 6}, "download failures 12% (6 of 50) > 5%"),
        ({"install_succeeded": 18, "install_failed": 4}, "install failures 18.2% (4 of 22) > 5%"),
    ],
)
def test_beat__a_crossed_failure_threshold_halts_the_rollout_naming_it_with_the_figures(
    rollout, device, versions, teammate, counts, words
):
    report(device, versions[1], **counts)

    assert engine.step_rollouts(rollout.stage_started_at + timedelta(minutes=5)) == {"halt": 1}

    halted = _fresh(rollout)
    assert halted.state == "halted"
    assert halted.halt_reason == f"Halted by itself in stage 1 (10%): {words}."
    assert halted.stage_history[-1]["outcome"] == "halted" and halted.stage_history[-1]["reason"] == words
    answer = api_client_for(teammate).get(f"/api/projects/kiosk/models/digit-classifier/rollouts/{rollout.pk}/")
    assert answer.json()["state"] == "halted" and words in answer.json()["halt_reason"]


def test_beat__a_latency_regression_against_the_replaced_version_halts_it(rollout, device, versions):
    report_latency(device, versions[0], p50_ms=4.0)
    report(device, versions[1], download_completed=25, install_succeeded=25)
    report_latency(device, versions[1], p50_ms=6.0)

    assert engine.step_rollouts(rollout.stage_started_at + timedelta(minutes=5)) == {"halt": 1}

    assert _fresh(rollout).halt_reason.endswith("latency p50 +50% (6 ms vs 4 ms on the replaced version) > 20%.")


def test_beat__failures_below_min_devices_are_not_judged_and_the_stage_advances_after_its_dwell(
    rollout, device, versions
):
    report(device, versions[1], download_completed=5, download_failed=5)

    assert engine.step_rollouts(rollout.stage_started_at + timedelta(minutes=60)) == {"advance": 1}

    first = _fresh(rollout).stage_history[0]
    assert first["figures"]["download_failed"] == 5
    assert first["health"][0]["judged"] is False
    assert (
        first["health"][0]["sentence"] == "download failures 50% (5 of 10) <= 5%, not judged until 20 devices reported"
    )


def test_beat__judges_each_stage_on_its_own_reports(rollout, device, versions):
    report(device, versions[1], download_completed=19, download_failed=1)  # 5%: within the threshold
    engine.step_rollouts(rollout.stage_started_at + timedelta(minutes=60))
    report(device, versions[1], download_completed=20)  # stage 2's own: no failure

    engine.step_rollouts(rollout.stage_started_at + timedelta(minutes=61))

    history = _fresh(rollout).stage_history
    assert history[0]["figures"]["download_failed"] == 1
    assert (history[1]["figures"]["download_completed"], history[1]["figures"]["download_failed"]) == (20, 0)


def test_beat__after_the_last_stage_completes_and_hands_the_target_to_a_rule_tried_first(
    rollout, versions, enrolled, model
):
    _, token, config = enrolled
    start = rollout.stage_started_at
    for minutes in (60, 120, 180):
        engine.step_rollouts(start + timedelta(minutes=minutes))

    done = _fresh(rollout)
    assert (done.state, done.ended_at) == ("completed", start + timedelta(minutes=180))
    assert [e["outcome"] for e in done.stage_history] == ["advanced", "advanced", "completed"]
    rule = TargetingRule.objects.get(pk=done.promoted_rule_id)
    assert (rule.version, rule.conditions, rule.description) == (versions[1], {}, f"rollout {rollout.pk} completed")
    from tests.devices.fleet_helpers import checkin

    answer = checkin(device_client(token), config).json()["models"]["digit-classifier"]
    assert answer["manifest"]["version_id"] == versions[1].pk and answer["reason"].startswith(f"rule {rule.pk}")

    services.rollback_rollout(rollout=done, user=None)
    assert not TargetingRule.objects.filter(pk=rule.pk).exists()


def test_beat__a_paused_rollout_is_not_moved(rollout, teammate):
    services.pause_rollout(rollout=rollout, user=teammate)

    assert engine.step_rollouts(rollout.stage_started_at + timedelta(days=1)) == {}
    assert _fresh(rollout).current_stage == 0


def test_resume_after_a_halt__judges_the_stage_afresh(rollout, device, versions, teammate):
    report(device, versions[1], download_completed=10, download_failed=10)
    engine.step_rollouts(rollout.stage_started_at + timedelta(minutes=1))
    resumed = services.resume_rollout(rollout=_fresh(rollout), user=teammate)

    assert engine.step_rollouts(resumed.stage_started_at + timedelta(minutes=1)) == {"wait": 1}
    assert [(e["stage"], e["outcome"]) for e in _fresh(rollout).stage_history] == [(0, "halted"), (0, None)]


def test_rate_cap__opens_the_stage_by_devices_per_minute_then_advances(
    model, versions, teammate, approver, enrollment_key
):
    for number in range(40):
        assert enroll(enrollment_key, device_id=f"capped-{number}")[0].status_code == 201
    stages = [{"percent": 50, "dwell_minutes": 5}, {"percent": 100, "dwell_minutes": 5}]
    rollout = running_rollout(
        model, versions[1], proposer=teammate, approver=approver, stages=stages, max_devices_per_minute=2
    )
    start = rollout.stage_started_at
    assert (rollout.offered_percent, rollout.stage_history[0]["eligible_devices"]) == (5.0, 40)  # 2 of 40

    shares = []
    for minute in range(1, 16):
        engine.step_rollouts(start + timedelta(minutes=minute))
        fresh = _fresh(rollout)
        shares.append((fresh.current_stage, fresh.offered_percent))

    # 2 devices a minute of 40 = 5 % a minute: 50 % from minute 9, whose 5 minutes of dwell end at minute 14;
    # then stage 2, whose cap is 2 x 2 = 4 devices a minute (10 %) above the 50 % already in.
    opening = [(0, 5.0 * (minute + 1)) for minute in range(1, 10)]
    assert shares == [*opening, *[(0, 50.0)] * 4, (1, 60.0), (1, 70.0)]


def test_step_task__runs_twice_at_once_without_moving_twice(rollout):
    start = rollout.stage_started_at
    later = start + timedelta(minutes=60)
    assert engine.step_rollouts(later) == {"advance": 1}
    assert engine.step_rollouts(later) == {"wait": 1}
    assert _fresh(rollout).current_stage == 1


def test_step_task__is_on_the_beat_schedule_and_steps_running_rollouts(rollout):
    entry = settings.CELERY_BEAT_SCHEDULE["step-rollouts"]
    assert entry["task"] == "devices.rollouts.tasks.step_rollouts"
    assert entry["schedule"].total_seconds() == settings.ROLLOUT_BEAT_INTERVAL_S
    assert tasks.step_rollouts() == {"wait": 1}


@pytest.mark.django_db(transaction=True)
def test_concurrent_beat_runs__never_skip_or_double_a_stage(model, versions, teammate, approver, device):
    """Four beat runs at the same instant, round after round: each rollout moves exactly one stage a round."""
    rollouts = [
        running_rollout(
            model,
            versions[1],
            proposer=teammate,
            approver=approver,
            target={"attributes": [{"key": "shard", "op": "eq", "value": shard}]},
        )
        for shard in range(3)
    ]
    start = max(r.stage_started_at for r in rollouts)
    runs = 4
    for round_number in (1, 2, 3):
        now = start + timedelta(minutes=60 * round_number)
        barrier = threading.Barrier(runs)
        results: list[dict[str, int]] = []
        errors: list[BaseException] = []

        def beat(now=now, barrier=barrier, results=results, errors=errors) -> None:
            try:
                barrier.wait()
                results.append(engine.step_rollouts(now))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=beat) for _ in range(runs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert not errors
        moved = sum(result.get("advance", 0) + result.get("complete", 0) for result in results)
        assert moved == len(rollouts)
        for rollout in rollouts:
            fresh = _fresh(rollout)
            assert [e["stage"] for e in fresh.stage_history] == list(range(min(round_number + 1, len(STAGES))))
    assert {_fresh(r).state for r in rollouts} == {"completed"}
    advances = LogEntry.objects.filter(
        object_pk__in=[str(r.pk) for r in rollouts], action=LogEntry.Action.UPDATE, changes__icontains="current_stage"
    )
    assert advances.count() == len(rollouts) * (len(STAGES) - 1)  # one audit entry per advance: none doubled


def test_retry_of_a_halted_rollout__offers_the_version_again_to_the_failed_device_only_and_is_audited(
    model, versions, teammate, approver, reporter, enrolled
):
    from rest_framework.test import APIClient

    from tests.devices.fleet_helpers import checkin

    whole = [{"percent": 100, "dwell_minutes": 60}]
    rollout = running_rollout(model, versions[1], proposer=teammate, approver=approver, stages=whole)
    device, reporter_token, reporter_config = reporter
    report(device, versions[1], download_failed=25)
    assert engine.step_rollouts(rollout.stage_started_at + timedelta(minutes=1)) == {"halt": 1}
    client = APIClient()
    client.force_login(teammate)

    answer = client.post(f"/api/projects/kiosk/models/digit-classifier/rollouts/{rollout.pk}/retry/")

    assert answer.status_code == 200 and answer.json()["retry_generation"] == 1
    retried = _fresh(rollout)
    assert (retried.state, retried.retry_devices) == ("halted", ["reporter"])
    entry = LogEntry.objects.filter(
        object_pk=str(rollout.pk), action=LogEntry.Action.UPDATE, changes__icontains="retry_generation"
    ).get()
    assert (entry.actor, entry.additional_data["via"], entry.changes["retry_generation"]) == (
        teammate,
        "api-session",
        ["0", "1"],
    )
    _, token, config = enrolled  # never failed: not offered the version while the rollout is halted
    other = checkin(device_client(token), config).json()["models"]["digit-classifier"]
    assert other["manifest"]["version_id"] == versions[0].pk and "retry" not in other
    failed = checkin(device_client(reporter_token), reporter_config).json()["models"]["digit-classifier"]
    assert (failed["manifest"]["version_id"], failed["retry"]) == (versions[1].pk, 1)
    assert "retrying a device whose download or install failed" in failed["reason"]


def test_retry_from_the_rollout_page__is_one_click_on_a_halted_rollout(
    model, versions, teammate, approver, reporter, client
):
    whole = [{"percent": 100, "dwell_minutes": 60}]
    rollout = running_rollout(model, versions[1], proposer=teammate, approver=approver, stages=whole)
    device, _token, _config = reporter
    report(device, versions[1], download_failed=25)
    engine.step_rollouts(rollout.stage_started_at + timedelta(minutes=1))
    client.force_login(teammate)
    url = f"/p/kiosk/m/digit-classifier/rollouts/{rollout.pk}/"
    assert 'value="retry"' in client.get(url).content.decode()

    answer = client.post(url, {"action": "retry"}, follow=True)

    assert "1 device(s) that failed may try again" in answer.content.decode()
    assert _fresh(rollout).retry_devices == ["reporter"]
