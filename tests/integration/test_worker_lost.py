"""A worker killed in the middle of a job: the job is not left "running" forever."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from console.jobkinds import services as jobkind_services
from jobs import services as job_services
from jobs.models import Job
from tests.conftest import make_mlp
from tests.integration.conftest import start_worker, stop_worker, wait_for
from tests.jobs.helpers import ready_version

pytestmark = pytest.mark.worker


def test_worker_killed_mid_job__reaper_requeues_it_and_another_worker_finishes(
    worker_environment, model, tmp_path, settings
):
    parent = ready_version(model, make_mlp(hidden=8192).SerializeToString())
    first = start_worker(tmp_path / "first.log", name="doomed", pool="solo")
    try:
        job = jobkind_services.queue_optimization(
            version=parent,
            kind="optimize_for_device",
            params={"device_type": "x86-gateway", "objective": "size", "accuracy_budget": 1.0},
        )
        wait_for(lambda: Job.objects.get(pk=job.pk).progress >= 10, timeout=60, message="the job to get going")
        first.kill()  # SIGKILL: no clean-up, no ack, as when a machine dies
        first.wait()
    finally:
        stop_worker(first)
    job.refresh_from_db()
    assert job.state == "running"

    later = timezone.now() + timedelta(seconds=settings.JOB_STALE_SECONDS + 1)
    assert job_services.reap_stale_jobs(now=later)["requeued"] == 1
    job.refresh_from_db()
    assert job.state == "queued" and "stopped responding" in job.log

    second = start_worker(tmp_path / "second.log", name="rescuer")
    try:
        wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=180, message="the retried job to finish")
    finally:
        stop_worker(second)
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    assert job.attempts == 2
