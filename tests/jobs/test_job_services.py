"""Job lifecycle: claiming, the stale-job reaper, cancellation, queueing, and what a waiting job tells people."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from console.models import ModelVersion
from jobs import services
from jobs.models import Job
from tests.conftest import make_mlp
from tests.jobs.helpers import broker_down, database_fails_on, messages_sent, uploaded_version

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
    Job.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 5)
    )

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
    assert services.reap_stale_jobs() == {"requeued": 0, "failed": 0, "resent": 0, "settled": 0}
    job.refresh_from_db()
    assert job.state == "running"


def test_cancel__queued_job__is_cancelled_and_cannot_be_claimed(job):
    assert services.cancel_job(job) is True
    assert services.claim_job(job.pk) is False
    assert services.cancel_job(job) is False


def test_start_job__sends_to_the_checks_queue_after_commit(project, django_capture_on_commit_callbacks):
    with messages_sent() as sent, django_capture_on_commit_callbacks(execute=True):
        job = services.start_job(project=project, kind="check")
        assert sent == []  # nothing leaves before the transaction commits
    assert sent == [(job.pk, "checks")]


def test_start_job__broker_down__job_stays_queued_with_a_note_and_the_caller_goes_on(
    project, django_capture_on_commit_callbacks
):
    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        job = services.start_job(project=project, kind="check")

    job.refresh_from_db()
    assert job.state == "queued" and "not sent: the broker did not take it" in job.log


def test_start_job__unknown_kind__is_refused(project):
    with pytest.raises(ValueError, match="unknown job kind"):
        services.start_job(project=project, kind="teleport")


def test_reaper__long_queued_job__is_resent_once_per_stale_period(job, settings):
    old = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 5)
    Job.objects.filter(pk=job.pk).update(created_at=old)

    with messages_sent() as sent:
        assert services.reap_stale_jobs()["resent"] == 1
        assert services.reap_stale_jobs()["resent"] == 0  # not again on the next run
        later = timezone.now() + timedelta(seconds=settings.JOB_STALE_SECONDS + 5)
        assert services.reap_stale_jobs(now=later)["resent"] == 1
    assert sent == [(job.pk, "checks"), (job.pk, "checks")]


def test_reaper__broker_still_down__counts_no_send_and_tries_again_next_period(job, settings):
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 5))

    with broker_down():
        assert services.reap_stale_jobs()["resent"] == 0

    later = timezone.now() + timedelta(seconds=settings.JOB_STALE_SECONDS + 5)
    with messages_sent() as sent:
        assert services.reap_stale_jobs(now=later)["resent"] == 1
    assert sent == [(job.pk, "checks")]


def test_claim__job_that_used_all_its_attempts__is_refused_and_fails_with_the_reason(job, settings):
    Job.objects.filter(pk=job.pk).update(attempts=settings.JOB_MAX_ATTEMPTS)

    assert services.claim_job(job.pk) is False

    job.refresh_from_db()
    assert job.state == "failed" and job.attempts == settings.JOB_MAX_ATTEMPTS
    assert f"gave up after {settings.JOB_MAX_ATTEMPTS} attempt(s)" in job.error


def test_fail__database_fails_while_cleaning_up_the_version__leaves_job_and_version_as_they_were(model):
    version = uploaded_version(model, make_mlp().SerializeToString())
    job = Job.objects.get(input_version=version, kind="check")
    services.claim_job(job.pk)

    with database_fails_on("console_modelversion"), pytest.raises(OperationalError):
        services.fail_job(job.pk, "the model is broken")

    job.refresh_from_db()
    version.refresh_from_db()
    assert (job.state, job.error) == ("running", "")  # still the reaper's to retry or fail, clean-up included
    assert version.state == "checking"


def test_cancel__check_job__fails_its_version_in_the_same_step(model):
    version = uploaded_version(model, make_mlp().SerializeToString())
    job = Job.objects.get(input_version=version, kind="check")

    assert services.cancel_job(job) is True

    version.refresh_from_db()
    assert (version.state, version.error) == ("failed", "cancelled")


def test_reaper__version_left_checking_after_its_check_failed__fails_with_the_check_reason(model):
    version = uploaded_version(model, make_mlp().SerializeToString())
    # what a crash between failing the job and cleaning up its version used to leave behind
    Job.objects.filter(input_version=version).update(state="failed", error="running it failed: bad shape")

    assert services.reap_stale_jobs()["settled"] == 1

    version.refresh_from_db()
    assert (version.state, version.error) == ("failed", "running it failed: bad shape")
    assert services.reap_stale_jobs()["settled"] == 0


def test_reaper__version_left_checking_with_no_check_job__is_checked_again(model):
    version = uploaded_version(model, make_mlp().SerializeToString())
    Job.objects.filter(input_version=version).delete()

    assert services.reap_stale_jobs()["settled"] == 1

    job = Job.objects.get(input_version=version, kind="check")
    assert job.state == "queued"
    version.refresh_from_db()
    assert version.state == ModelVersion.State.CHECKING


def test_reaper__version_with_a_queued_check__is_left_alone(model):
    version = uploaded_version(model, make_mlp().SerializeToString())
    assert services.reap_stale_jobs()["settled"] == 0
    version.refresh_from_db()
    assert version.state == "checking"


def test_outlook__job_just_queued_or_running__has_nothing_to_say(job):
    assert services.outlook(job) is None
    services.claim_job(job.pk)
    job.refresh_from_db()
    assert services.outlook(job) is None


def test_outlook__job_queued_with_no_worker_taking_it__says_when_it_is_sent_again(job, settings):
    later = job.created_at + timedelta(minutes=2)

    outlook = services.outlook(job, now=later)

    assert outlook.waiting_for_worker and outlook.silent_since is None
    assert outlook.retry_at == job.created_at + timedelta(seconds=settings.JOB_STALE_SECONDS)


def test_outlook__running_job_whose_worker_went_silent__says_when_it_is_retried(job, settings):
    services.claim_job(job.pk)
    job.refresh_from_db()
    later = job.heartbeat_at + timedelta(minutes=2)

    outlook = services.outlook(job, now=later)

    assert not outlook.waiting_for_worker and not outlook.gives_up
    assert outlook.silent_since == job.heartbeat_at
    assert outlook.retry_at == job.heartbeat_at + timedelta(seconds=settings.JOB_STALE_SECONDS)
    # the reaper acts exactly then
    assert services.reap_stale_jobs(now=outlook.retry_at - timedelta(seconds=1))["requeued"] == 0
    assert services.reap_stale_jobs(now=outlook.retry_at + timedelta(seconds=1))["requeued"] == 1


def test_outlook__silent_job_on_its_last_attempt__says_it_will_fail(job, settings):
    services.claim_job(job.pk)
    Job.objects.filter(pk=job.pk).update(attempts=settings.JOB_MAX_ATTEMPTS)
    job.refresh_from_db()

    assert services.outlook(job, now=job.heartbeat_at + timedelta(minutes=2)).gives_up
