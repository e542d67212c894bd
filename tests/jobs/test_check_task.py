"""The compatibility check, called directly as the worker would call it."""

from __future__ import annotations

import pytest

from console.models import CompatibilityResult, ModelVersion
from devices.models import DeviceType
from jobs.models import Job
from jobs.tasks import execute_job
from tests.conftest import make_mlp
from tests.jobs.helpers import unrunnable_model_bytes, uploaded_version

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
        project=project, slug="tiny-mcu", name="Tiny MCU", memory_mb=1, storage_mb=1, max_model_mb=1,
        runtime_version="1.20", precisions=["fp32"],
    )
    big = make_mlp(hidden=40000).SerializeToString()
    assert len(big) > 1024 * 1024
    version = uploaded_version(model, big)
    execute_job(check_job(version).pk)

    row = CompatibilityResult.objects.get(version=version, device_type__slug="tiny-mcu")
    assert not row.compatible
    assert any("over this device type's limit" in r for r in row.reasons)


def test_check__model_that_loads_but_fails_to_run__fails_the_job_and_the_version(model):
    version = uploaded_version(model, unrunnable_model_bytes())

    assert execute_job(check_job(version).pk) == "failed"

    job = check_job(version)
    version.refresh_from_db()
    assert job.state == "failed" and job.finished_at is not None
    assert "running it failed" in job.error
    assert version.state == ModelVersion.State.FAILED
    assert version.error == job.error
    assert not CompatibilityResult.objects.filter(version=version).exists()


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
