from __future__ import annotations

import numpy as np
import onnx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from onnx import TensorProto, helper, numpy_helper

from console.models import ModelVersion
from jobs.models import Job
from tests.conftest import api_client_for, make_mlp, stored_files

pytestmark = pytest.mark.django_db


def upload(client, project, model, payload: bytes, name: str = "model.onnx"):
    url = f"/api/projects/{project.slug}/models/{model.name}/versions/"
    return client.post(url, {"file": SimpleUploadedFile(name, payload)}, format="multipart")


def assert_nothing_left(isolated_storage, model):
    assert stored_files(isolated_storage) == []
    assert ModelVersion.objects.filter(model=model).count() == 0
    assert Job.objects.count() == 0


def test_upload__valid_model__creates_checking_version_and_queues_check(
    project, model, teammate, mlp_bytes, isolated_storage
):
    response = upload(api_client_for(teammate), project, model, mlp_bytes)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["number"] == 1 and body["state"] == "checking"
    version = ModelVersion.objects.get(model=model, number=1)
    assert version.size_bytes == len(mlp_bytes)
    import hashlib

    assert version.sha256 == hashlib.sha256(mlp_bytes).hexdigest()
    assert len(stored_files(isolated_storage)) == 1
    job = Job.objects.get(input_version=version)
    assert (job.kind, job.state) == ("check", "queued")


def test_upload__second_file__gets_next_number(project, model, teammate):
    client = api_client_for(teammate)
    assert upload(client, project, model, make_mlp(seed=1).SerializeToString()).json()["number"] == 1
    assert upload(client, project, model, make_mlp(seed=2).SerializeToString()).json()["number"] == 2


def test_upload__not_onnx__is_rejected_and_leaves_nothing(project, model, teammate, isolated_storage):
    response = upload(api_client_for(teammate), project, model, b"PK\x03\x04 this is a zip, not a model" * 10)
    assert response.status_code == 400
    assert "not a readable ONNX model" in response.json()["detail"]
    assert_nothing_left(isolated_storage, model)


def test_upload__truncated_file__is_rejected_and_leaves_nothing(project, model, teammate, isolated_storage):
    payload = make_mlp(hidden=64).SerializeToString()
    response = upload(api_client_for(teammate), project, model, payload[: len(payload) // 2])
    assert response.status_code == 400
    assert "ONNX" in response.json()["detail"]
    assert_nothing_left(isolated_storage, model)


def test_upload__empty_file__is_rejected_and_leaves_nothing(project, model, teammate, isolated_storage):
    response = upload(api_client_for(teammate), project, model, b"")
    assert response.status_code == 400
    assert "empty" in str(response.json()).lower()
    assert_nothing_left(isolated_storage, model)


def test_upload__protobuf_failing_the_checker__is_rejected_with_the_checker_message(
    project, model, teammate, isolated_storage
):
    broken = make_mlp()
    broken.graph.node[0].input[1] = "no_such_tensor"  # a node reads a tensor nothing produces
    response = upload(api_client_for(teammate), project, model, broken.SerializeToString())
    assert response.status_code == 400
    assert "fails the ONNX checker" in response.json()["detail"]
    assert_nothing_left(isolated_storage, model)


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "weights/../../../secret.bin"])
def test_upload__external_data_outside_the_folder__is_refused(project, model, teammate, isolated_storage, location):
    crafted = make_mlp()
    weight = crafted.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value=location)
    response = upload(api_client_for(teammate), project, model, crafted.SerializeToString())
    assert response.status_code == 400
    assert "outside the model's folder" in response.json()["detail"]
    assert_nothing_left(isolated_storage, model)


def test_upload__over_the_size_limit__is_413_and_leaves_nothing(project, model, teammate, settings, isolated_storage):
    settings.MAX_UPLOAD_BYTES = 1024
    payload = make_mlp(hidden=128).SerializeToString()
    assert len(payload) > 1024
    response = upload(api_client_for(teammate), project, model, payload)
    assert response.status_code == 413
    assert "upload limit" in response.json()["detail"]
    assert_nothing_left(isolated_storage, model)


def test_upload__same_file_twice__is_409_pointing_at_the_existing_version(
    project, model, teammate, mlp_bytes, isolated_storage
):
    client = api_client_for(teammate)
    assert upload(client, project, model, mlp_bytes).status_code == 201
    response = upload(client, project, model, mlp_bytes)
    assert response.status_code == 409
    body = response.json()
    assert body["existing_version"] == 1
    assert body["url"].endswith("/models/digit-classifier/versions/1/")
    assert ModelVersion.objects.filter(model=model).count() == 1
    assert len(stored_files(isolated_storage)) == 1


def test_upload__same_file_to_another_model__is_a_new_version(project, model, teammate, mlp_bytes):
    from console.catalog import services as catalog_services

    other = catalog_services.create_model(project=project, name="other-model")
    client = api_client_for(teammate)
    assert upload(client, project, model, mlp_bytes).status_code == 201
    assert upload(client, project, other, mlp_bytes).status_code == 201


def test_upload__without_a_file_field__says_which_field(project, model, teammate):
    response = api_client_for(teammate).post(
        f"/api/projects/{project.slug}/models/{model.name}/versions/", {"other": "x"}, format="multipart"
    )
    assert response.status_code == 400
    assert "file" in response.json()


def test_upload__by_a_viewer__is_forbidden(project, model, viewer, mlp_bytes, isolated_storage):
    response = upload(api_client_for(viewer), project, model, mlp_bytes)
    assert response.status_code == 403
    assert "viewer" in response.json()["detail"]
    assert_nothing_left(isolated_storage, model)


def test_upload__by_an_approver__is_forbidden(project, model, approver, mlp_bytes):
    assert upload(api_client_for(approver), project, model, mlp_bytes).status_code == 403


def test_upload__by_an_outsider__looks_like_no_such_project(project, model, outsider, mlp_bytes, isolated_storage):
    response = upload(api_client_for(outsider), project, model, mlp_bytes)
    assert response.status_code == 404
    assert_nothing_left(isolated_storage, model)


def test_upload__anonymous__is_refused(project, model, mlp_bytes):
    from rest_framework.test import APIClient

    assert upload(APIClient(), project, model, mlp_bytes).status_code in (401, 403)


def test_upload__model_with_constant_node_weights__is_accepted(project, model, teammate):
    weights = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["w"], value=weights), helper.make_node("MatMul", ["x", "w"], ["y"])],
        "const",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    payload = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    payload.ir_version = 8
    onnx.checker.check_model(payload)
    assert upload(api_client_for(teammate), project, model, payload.SerializeToString()).status_code == 201


@pytest.mark.django_db(transaction=True)
def test_upload__broker_down__succeeds_and_the_reaper_sends_the_check_once_it_is_back(
    project, model, teammate, mlp_bytes, isolated_storage, settings
):
    from datetime import timedelta

    from django.utils import timezone

    from jobs import services as job_services
    from jobs.tasks import execute_job
    from tests.jobs.helpers import broker_down

    client = api_client_for(teammate)
    with broker_down():
        response = upload(client, project, model, mlp_bytes)
        again = upload(client, project, model, mlp_bytes)

    assert response.status_code == 201, response.content
    version = ModelVersion.objects.get(model=model, number=1)
    assert version.state == "checking"
    assert [p.name for p in stored_files(isolated_storage)] == [f"{version.sha256}.onnx"]  # the file stays
    job = Job.objects.get(input_version=version, kind="check")
    assert job.state == "queued" and "not sent: the broker did not take it" in job.log
    assert again.status_code == 409 and again.json()["existing_version"] == 1  # the intact version, not a wreck

    later = timezone.now() + timedelta(seconds=settings.JOB_STALE_SECONDS + 1)
    assert job_services.reap_stale_jobs(now=later)["resent"] == 1  # the broker is back
    assert execute_job(job.pk) == "succeeded"
    version.refresh_from_db()
    assert version.state == "ready"


def test_upload__database_fails_while_queueing_the_check__leaves_nothing(model, mlp_bytes, isolated_storage):
    from django.db import OperationalError

    from tests.jobs.helpers import database_fails_on, uploaded_version

    with database_fails_on("jobs_job"), pytest.raises(OperationalError):
        uploaded_version(model, mlp_bytes)

    assert_nothing_left(isolated_storage, model)
