"""Job lifecycle: claiming, the stale-job reaper, cancellation and queueing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import services
from jobs.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(project):
    return Job.objects.create(project=project, kind="check")


def test_claim__only_one_of_two_claims_wins(job):
    assert services.claim_job(job.pk) is True
    assert services.claim_job(job.pk) is False
    job.refresh_from_db()
    assert job.state == "running" and job.attempts == 1


def test_reaper__running_job_with_a_silent_worker__is_requeued(job, settings, django_capture_on_commit_callbacks):
    services.claim_job(job.pk)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 5))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = services.reap_stale_jobs()

    job.refresh_from_db()
    assert outcome["requeued"] == 1
    assert job.state == "queued" and "stopped responding" in job.log
    assert len(callbacks) == 1  # sent to the broker again once committed


def test_reaper__job_out_of_attempts__fails_with_the_reason(job, settings):
    services.claim_job(job.pk)
    Job.objects.filter(pk=job.pk).update(
        attempts=settings.JOB_MAX_ATTEMPTS, heartbeat_at=timezone.now() - timedelta(hours=2)
    )
    assert services.reap_stale_jobs()["failed"] == 1
    job.refresh_from_db()
    assert job.state == "failed" and "stopped responding" in job.error


def test_reaper__running_job_with_a_fresh_heartbeat__is_left_alone(job):
    services.claim_job(job.pk)
    assert services.reap_stale_jobs() == {"requeued": 0, "failed": 0, "resent": 0}
    job.refresh_from_db()
    assert job.state == "running"


def test_cancel__queued_job__is_cancelled_and_cannot_be_claimed(job):
    assert services.cancel_job(job) is True
    assert services.claim_job(job.pk) is False
    assert services.cancel_job(job) is False


def test_start_job__sends_to_the_checks_queue_after_commit(project, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "enqueue", lambda job_id, queue: sent.append((job_id, queue)))
    with django_capture_on_commit_callbacks(execute=True):
        job = services.start_job(project=project, kind="check")
        assert sent == []  # nothing leaves before the transaction commits
    assert sent == [(job.pk, "checks")]


def test_start_job__unknown_kind__is_refused(project):
    with pytest.raises(ValueError, match="unknown job kind"):
        services.start_job(project=project, kind="teleport")


def test_reaper__long_queued_job__is_resent_once_per_stale_period(job, settings, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "enqueue", lambda job_id, queue: sent.append(job_id))
    old = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 5)
    Job.objects.filter(pk=job.pk).update(created_at=old)

    assert services.reap_stale_jobs()["resent"] == 1
    assert services.reap_stale_jobs()["resent"] == 0  # not again on the next run
    later = timezone.now() + timedelta(seconds=settings.JOB_STALE_SECONDS + 5)
    assert services.reap_stale_jobs(now=later)["resent"] == 1
    assert sent == [job.pk, job.pk]
