"""The compatibility check, called directly as the worker would call it."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.db.models.signals import post_save
from django.urls import reverse
from django.utils import timezone

from console.models import CompatibilityResult, ModelVersion
from devices.models import DeviceType
from jobs import services as job_services
from jobs.models import Job
from jobs.tasks import execute_job, run_job
from jobs.tooling import live_runtime
from tests.conftest import make_mlp
from tests.jobs.helpers import database_fails_on, messages_sent, unrunnable_model_bytes, uploaded_version
from tests.jobs.tooling.test_live_runtime import (
    constant_add_model,
    map_input_model,
    no_kernel_model,
    resize_model,
    sequence_input_model,
)
from tests.security import hostile_files

pytestmark = pytest.mark.django_db


def check_job(version) -> Job:
    return Job.objects.get(input_version=version, kind="check")


def test_check__runnable_model__is_ready_with_a_row_per_device_type(model):
    version = uploaded_version(model, make_mlp().SerializeToString())

    assert execute_job(check_job(version).pk) == "succeeded"

    version.refresh_from_db()
    assert version.state == ModelVersion.State.READY
    facts = version.metadata
    assert facts["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["N", 8]}]
    assert facts["parameters"]["count"] == 8 * 16 + 16 + 16 * 4 + 4
    assert facts["macs"]["total"] == 8 * 16 + 16 * 4
    assert facts["operator_histogram"]["MatMul"] == 2
    assert facts["smoke_run"]["outputs"][0]["shape"] == [1, 4]
    rows = CompatibilityResult.objects.filter(version=version)
    assert rows.count() == DeviceType.objects.filter(project=None).count() >= 4
    job = check_job(version)
    assert (job.state, job.progress) == ("succeeded", 100)
    assert "compatible with" in job.log


def test_check__opset_too_new__fails_on_old_runtimes_with_the_reason(model):
    version = uploaded_version(model, make_mlp(opset=21).SerializeToString())
    execute_job(check_job(version).pk)

    pi = CompatibilityResult.objects.get(version=version, device_type__slug="raspberry-pi-4")
    assert not pi.compatible
    assert any("opset 21 of ai.onnx is too new for onnxruntime 1.16 (supports up to 19)" in r for r in pi.reasons)
    gateway = CompatibilityResult.objects.get(version=version, device_type__slug="x86-gateway")
    assert gateway.compatible, gateway.reasons


def test_check__project_device_type_with_a_small_size_limit__fails_on_size(model, project):
    DeviceType.objects.create(
        project=project,
        slug="tiny-mcu",
        name="Tiny MCU",
        memory_mb=1,
        storage_mb=1,
        max_model_mb=1,
        runtime_version="1.20",
        precisions=["fp32"],
    )
    big = make_mlp(hidden=40000).SerializeToString()
    assert len(big) > 1024 * 1024
    version = uploaded_version(model, big)
    execute_job(check_job(version).pk)

    row = CompatibilityResult.objects.get(version=version, device_type__slug="tiny-mcu")
    assert not row.compatible
    assert any("over this device type's limit" in r for r in row.reasons)


def test_check__model_no_session_can_be_created_for__fails_the_job_and_the_version_with_the_reason(model):
    version = uploaded_version(model, no_kernel_model().SerializeToString())

    assert execute_job(check_job(version).pk) == "failed"

    job = check_job(version)
    version.refresh_from_db()
    assert job.state == "failed" and job.finished_at is not None
    assert f"onnxruntime {live_runtime.version()} cannot load the model" in job.error and "GRUUnit" in job.error
    assert version.state == ModelVersion.State.FAILED
    assert version.error == job.error
    assert not CompatibilityResult.objects.filter(version=version).exists()


def test_check__run_on_generated_inputs_fails__is_ready_and_the_page_shows_the_warning(client, model, teammate):
    version = uploaded_version(model, resize_model().SerializeToString())  # generated scales are negative

    assert execute_job(check_job(version).pk) == "succeeded"

    version.refresh_from_db()
    assert (version.state, version.error) == (ModelVersion.State.READY, "")
    warning = version.metadata["smoke_run"]["warning"]
    assert "a run on generated inputs failed" in warning and "Scale value should be greater than 0" in warning
    assert CompatibilityResult.objects.filter(version=version).exists()
    assert warning in check_job(version).log
    client.force_login(teammate)
    page = client.get(reverse("version", args=[model.project.slug, model.name, version.number])).content.decode()
    assert "Run on generated inputs" in page and html.escape(warning) in page


def test_check__model_that_loads_but_fails_on_generated_inputs__is_ready_with_a_warning(model):
    version = uploaded_version(model, unrunnable_model_bytes())

    assert execute_job(check_job(version).pk) == "succeeded"

    version.refresh_from_db()
    assert version.state == ModelVersion.State.READY
    assert "a run on generated inputs failed" in version.metadata["smoke_run"]["warning"]


def test_check__model_with_a_sequence_input__is_ready_after_a_run_on_a_one_element_sequence(model):
    version = uploaded_version(model, sequence_input_model().SerializeToString())

    assert execute_job(check_job(version).pk) == "succeeded"

    version.refresh_from_db()
    assert version.state == ModelVersion.State.READY
    assert version.metadata["smoke_run"]["inputs"] == {"parts": {"sequence_of": [[1]]}}


def test_check__model_with_a_map_input__is_ready_with_the_run_skipped_and_why(model):
    version = uploaded_version(model, map_input_model().SerializeToString())

    assert execute_job(check_job(version).pk) == "succeeded"

    version.refresh_from_db()
    assert version.state == ModelVersion.State.READY
    assert "input 'features' is a map" in version.metadata["smoke_run"]["skipped"]


def test_check__model_with_a_constant_node__is_compatible_with_the_x86_gateway(model):
    version = uploaded_version(model, constant_add_model().SerializeToString())

    execute_job(check_job(version).pk)

    gateway = CompatibilityResult.objects.get(version=version, device_type__slug="x86-gateway")
    assert gateway.compatible, gateway.reasons


def test_check__runs_twice__second_run_does_nothing(model):
    version = uploaded_version(model, make_mlp().SerializeToString())
    job = check_job(version)
    assert execute_job(job.pk) == "succeeded"
    assert execute_job(job.pk) == "skipped"
    job.refresh_from_db()
    assert job.attempts == 1 and job.state == "succeeded"


def test_check__job_row_gone__exits_quietly(model):
    assert execute_job(987654) == "skipped"


def test_check__demo_digits_model__is_ready_and_flags_the_mobile_package(model, digits_demo):
    model_path, _, _ = digits_demo
    version = uploaded_version(model, model_path.read_bytes())
    execute_job(check_job(version).pk)

    version.refresh_from_db()
    assert version.state == "ready"
    phone = CompatibilityResult.objects.get(version=version, device_type__slug="android-arm64-phone")
    assert not phone.compatible
    assert any("ArrayFeatureExtractor" in r for r in phone.reasons)


@pytest.mark.django_db(transaction=True)  # a failing query closes the worker's connection, as in a worker
def test_check__database_keeps_failing__fails_at_the_attempt_limit_with_the_reason(model, settings):
    version = uploaded_version(model, make_mlp().SerializeToString())
    job = check_job(version)

    with database_fails_on("devices_devicetype", message="could not receive data from server"), messages_sent() as sent:
        run_job.apply(kwargs={"job_id": job.pk})  # as a worker runs it, Celery's retries included

    job.refresh_from_db()
    assert (job.state, job.attempts) == ("failed", settings.JOB_MAX_ATTEMPTS)
    assert f"gave up after {settings.JOB_MAX_ATTEMPTS} attempt(s)" in job.error
    assert "could not receive data from server" in job.error
    assert sent == []  # only Celery's own retries bring it back: no second message per failure
    version.refresh_from_db()
    assert (version.state, version.error) == ("failed", job.error)


@pytest.mark.django_db(transaction=True)
def test_check__database_fails_once__second_attempt_makes_the_version_ready(model):
    version = uploaded_version(model, make_mlp().SerializeToString())
    job = check_job(version)

    with database_fails_on("devices_devicetype", times=1):
        run_job.apply(kwargs={"job_id": job.pk})

    job.refresh_from_db()
    assert (job.state, job.attempts) == ("succeeded", 2)
    assert "hit a transient error" in job.log
    version.refresh_from_db()
    assert version.state == "ready"


def test_check__cancelled_while_saving_its_results__version_is_not_marked_ready(model):
    version = uploaded_version(model, make_mlp().SerializeToString())
    job = check_job(version)

    def cancel_meanwhile(sender, instance, created, **kwargs):  # a person presses cancel at this very moment
        post_save.disconnect(cancel_meanwhile, sender=CompatibilityResult)
        job_services.cancel_job(job)

    post_save.connect(cancel_meanwhile, sender=CompatibilityResult, weak=False)
    try:
        assert execute_job(job.pk) == "cancelled"
    finally:
        post_save.disconnect(cancel_meanwhile, sender=CompatibilityResult)

    version.refresh_from_db()
    job.refresh_from_db()
    assert job.state == "cancelled"
    assert (version.state, version.error) == ("failed", "cancelled")


def test_check__worker_killed_mid_check__version_page_says_when_it_is_retried(client, model, teammate, settings):
    version = uploaded_version(model, make_mlp().SerializeToString())
    job = check_job(version)
    job_services.claim_job(job.pk)
    last_word = timezone.now() - timedelta(minutes=3)  # the worker was killed three minutes ago
    Job.objects.filter(pk=job.pk).update(heartbeat_at=last_word)

    client.force_login(teammate)
    page = client.get(reverse("version", args=[model.project.slug, model.name, version.number])).content.decode()

    retry_at = last_word + timedelta(seconds=settings.JOB_STALE_SECONDS)
    assert f"No word from its worker since {timezone.localtime(last_word):%H:%M:%S}" in page
    assert f"a retry is pending at {timezone.localtime(retry_at):%H:%M:%S}" in page


def test_check__model_declaring_huge_inputs__is_ready_with_the_run_skipped_and_why(model):
    version = uploaded_version(model, hostile_files.big_declared_input(8192))
    execute_job(check_job(version).pk)
    version.refresh_from_db()
    assert version.state == ModelVersion.State.READY
    assert "67,108,864 generated values" in version.metadata["smoke_run"]["skipped"]
