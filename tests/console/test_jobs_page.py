"""The jobs page of a project: what each job works on, who started it, its state, log and error; cancel, retry."""

from __future__ import annotations

import pytest
from django.test import Client

from console.jobkinds.services import queue_optimization, retry_job
from console.models import Dataset
from jobs.models import Job
from jobs.services import fail_job
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import ready_version

pytestmark = pytest.mark.django_db

JOBS = "/p/kiosk/jobs/"


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def failed_optimization(model, teammate):
    version = ready_version(model)
    job = queue_optimization(version=version, kind="optimize", params={"transform": "quantize_dynamic"}, user=teammate)
    fail_job(job.pk, "quantize_dynamic: nothing to quantize")
    job.refresh_from_db()
    return job


def test_jobs_page__shows_what_each_job_works_on_who_started_it_and_its_error(failed_optimization, viewer, teammate):
    body = browser(viewer).get(JOBS).content.decode()

    row = body.split(f'id="job-{failed_optimization.pk}"')[1].split("</tr>")[0]
    assert "digit-classifier v1" in row
    assert "quantize_dynamic" in row
    assert teammate.username in row
    assert "nothing to quantize" in row
    assert "failed: quantize_dynamic" in row  # the log
    assert 'value="retry"' not in row  # a viewer sees no buttons


def test_jobs_page__filters_by_kind_state_and_model(failed_optimization, owner, project):
    client = browser(owner)
    check = Job.objects.get(kind="check", project=project)

    assert f'id="job-{check.pk}"' not in client.get(JOBS, {"kind": "optimize"}).content.decode()
    assert f'id="job-{failed_optimization.pk}"' in client.get(JOBS, {"state": "failed"}).content.decode()
    assert f'id="job-{check.pk}"' not in client.get(JOBS, {"state": "failed"}).content.decode()
    assert "No job matches these filters" in client.get(JOBS, {"model": "no-such-model"}).content.decode()


def test_jobs_page__unknown_filter_value__says_what_is_allowed(owner, project):
    response = browser(owner).get(JOBS, {"state": "exploded"})

    assert response.status_code == 200
    assert "is not a valid choice" in response.content.decode()


def test_jobs_page__names_the_dataset_of_an_optimization(model, owner, teammate):
    version = ready_version(model)
    dataset = Dataset.objects.create(
        model=model, name="held-out digits", file="d.npz", format="npz", sha256="0" * 64, size_bytes=1, rows=1
    )
    queue_optimization(
        version=version, kind="optimize", params={"transform": "quantize_static"}, dataset=dataset, user=teammate
    )

    assert "held-out digits" in browser(owner).get(JOBS).content.decode()


def test_retry__queues_a_new_job_with_the_same_version_and_parameters_once(failed_optimization, teammate):
    client = browser(teammate)

    response = client.post(JOBS, {"action": "retry", "job": failed_optimization.pk, "back": "state=failed"})

    assert response.status_code == 302 and response["Location"] == JOBS + "?state=failed"
    new = Job.objects.exclude(pk=failed_optimization.pk).get(kind="optimize")
    assert new.state == Job.State.QUEUED
    assert new.params == failed_optimization.params
    assert new.input_version_id == failed_optimization.input_version_id
    assert new.created_by == teammate
    client.post(JOBS, {"action": "retry", "job": failed_optimization.pk})
    assert Job.objects.filter(kind="optimize").count() == 2  # the second click queued nothing
    assert f"already retried as job #{new.pk}" in client.get(JOBS).content.decode()


def test_retry__of_a_failed_check__checks_the_version_again(model, teammate):
    from jobs.services import claim_job
    from tests.jobs.helpers import unrunnable_model_bytes, uploaded_version

    version = uploaded_version(model, unrunnable_model_bytes())
    check = Job.objects.get(input_version=version, kind="check")
    claim_job(check.pk)
    fail_job(check.pk, "does not load")
    version.refresh_from_db()
    assert version.state == "failed"

    new = retry_job(job=check, user=teammate)

    version.refresh_from_db()
    assert new.kind == "check" and version.state == "checking"


def test_cancel__from_the_page_cancels_a_queued_job(model, teammate, project):
    version = ready_version(model)
    job = queue_optimization(version=version, kind="optimize", params={"transform": "fp16"}, user=teammate)

    browser(teammate).post(JOBS, {"action": "cancel", "job": job.pk})

    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED


def test_jobs_page__viewer_cannot_retry_and_another_projects_job_is_404(failed_optimization, viewer, outsider):
    assert browser(viewer).post(JOBS, {"action": "retry", "job": failed_optimization.pk}).status_code == 403
    assert browser(outsider).get(JOBS).status_code == 404
    assert Job.objects.filter(kind="optimize").count() == 1


def test_jobs_page__missing_action__says_what_to_choose(owner, project):
    response = browser(owner).post(JOBS, {}, follow=True)

    assert "Choose a job and an action" in response.content.decode()


def test_retry_api__answers_the_new_job_and_refuses_a_succeeded_one(failed_optimization, teammate, project):
    client = api_client_for(teammate)

    response = client.post(f"/api/projects/kiosk/jobs/{failed_optimization.pk}/retry/")

    assert response.status_code == 202
    assert response.json()["kind"] == "optimize" and response.json()["state"] == "queued"
    check = Job.objects.get(kind="check", project=project)
    Job.objects.filter(pk=check.pk).update(state=Job.State.SUCCEEDED)
    refused = client.post(f"/api/projects/kiosk/jobs/{check.pk}/retry/")
    assert refused.status_code == 400
    assert "only a failed or cancelled job can be retried" in refused.json()["detail"]
