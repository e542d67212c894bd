"""Upload through the API and let a real Celery worker on Redis run the check."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from console.models import ModelVersion
from jobs import services as job_services
from jobs.models import Job
from tests.conftest import api_client_for, make_mlp
from tests.integration.conftest import wait_for
from tests.jobs.helpers import broker_down
from tests.jobs.tooling.test_live_runtime import no_kernel_model

pytestmark = pytest.mark.worker


def test_upload_through_api__real_worker_checks_it_to_ready(celery_worker_process, project, model, teammate):
    client = api_client_for(teammate)
    response = client.post(
        f"/api/projects/{project.slug}/models/{model.name}/versions/",
        {"file": SimpleUploadedFile("mlp.onnx", make_mlp().SerializeToString())},
        format="multipart",
    )
    assert response.status_code == 201

    job = Job.objects.get(input_version__model=model, kind="check")
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, message="the check job to finish")

    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    version = ModelVersion.objects.get(model=model, number=1)
    assert version.state == "ready"
    assert version.compatibility.count() >= 4
    detail = client.get(f"/api/projects/{project.slug}/models/{model.name}/versions/1/").json()
    assert {row["device_type"] for row in detail["compatibility"]} >= {"raspberry-pi-4", "x86-gateway"}
    assert detail["jobs"][0]["state"] == "succeeded"


def test_model_no_session_can_be_created_for__real_worker_fails_it_with_the_reason(
    celery_worker_process, project, model, teammate
):
    client = api_client_for(teammate)
    response = client.post(
        f"/api/projects/{project.slug}/models/{model.name}/versions/",
        {"file": SimpleUploadedFile("bad.onnx", no_kernel_model().SerializeToString())},
        format="multipart",
    )
    assert response.status_code == 201
    version = ModelVersion.objects.get(model=model, number=1)
    wait_for(lambda: ModelVersion.objects.get(pk=version.pk).state != "checking", message="the check to end")
    version.refresh_from_db()
    assert version.state == "failed" and "cannot load the model" in version.error
    assert not Job.objects.filter(state__in=["queued", "running"]).exists()


def test_upload_while_the_broker_is_down__reaper_sends_it_and_a_real_worker_checks_it(
    celery_worker_process, project, model, teammate, settings
):
    client = api_client_for(teammate)
    with broker_down():
        response = client.post(
            f"/api/projects/{project.slug}/models/{model.name}/versions/",
            {"file": SimpleUploadedFile("mlp.onnx", make_mlp().SerializeToString())},
            format="multipart",
        )
    assert response.status_code == 201
    version = ModelVersion.objects.get(model=model, number=1)
    assert Job.objects.get(input_version=version).state == "queued"  # nothing reached the worker

    later = timezone.now() + timedelta(seconds=settings.JOB_STALE_SECONDS + 1)
    assert job_services.reap_stale_jobs(now=later)["resent"] == 1
    wait_for(lambda: ModelVersion.objects.get(pk=version.pk).state != "checking", message="the check to end")
    version.refresh_from_db()
    assert version.state == "ready"
