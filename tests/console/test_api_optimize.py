"""Queueing optimization jobs through the API: what is refused up front, and why."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.conftest import api_client_for
from tests.jobs.helpers import ready_version, uploaded_version

pytestmark = pytest.mark.django_db


def url(project, model, number, action="optimize"):
    return f"/api/projects/{project.slug}/models/{model.name}/versions/{number}/{action}/"


def test_optimize__valid_request__queues_a_heavy_job_on_the_version(project, model, teammate):
    version = ready_version(model)
    response = api_client_for(teammate).post(
        url(project, model, version.number),
        {"transform": "quantize_dynamic", "params": {"per_channel": True}},
        format="json",
    )
    assert response.status_code == 202, response.json()
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.kind, job.state, job.input_version_id) == ("optimize", "queued", version.pk)
    assert job.params["params"] == {"per_channel": True, "weight_type": "int8", "preprocess": True, "op_types": None}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"transform": "teleport"}, "transform", "not a valid choice"),
        ({"transform": "quantize_static"}, "dataset", "attach a dataset"),
        ({"transform": "prune", "params": {"sparsity": 2}}, "params", "at most"),
        ({"transform": "prune", "params": {"colour": "red"}}, "params", "no parameter colour"),
        ({"transform": "convert_opset"}, "params", "needs target_opset"),
        ({"transform": "prune", "dataset": 999}, "dataset", "No dataset 999"),
        ({"transform": "svd"}, "params", "svd needs exactly one of rank or energy; got neither"),
        ({"transform": "svd", "params": {"rank": 8, "energy": 0.9}}, "params", "got rank and energy"),
    ],
    ids=[
        "unknown-transform",
        "static-without-dataset",
        "out-of-range",
        "unknown-param",
        "missing-param",
        "foreign-dataset",
        "svd-without-rank-or-energy",
        "svd-with-both",
    ],
)
def test_optimize__bad_request__is_400_naming_the_field(project, model, teammate, body, field, words):
    version = ready_version(model)
    response = api_client_for(teammate).post(url(project, model, version.number), body, format="json")
    assert response.status_code == 400
    assert words in str(response.json()[field])
    assert not Job.objects.filter(kind="optimize").exists()


def test_optimize__svd_with_an_energy__queues(project, model, teammate):
    version = ready_version(model)
    response = api_client_for(teammate).post(
        url(project, model, version.number), {"transform": "svd", "params": {"energy": 0.95}}, format="json"
    )
    assert response.status_code == 202, response.json()
    assert Job.objects.get(pk=response.json()["id"]).params["params"]["energy"] == 0.95


def test_optimize__version_still_checking__is_409(project, model, teammate, mlp_bytes):
    version = uploaded_version(model, mlp_bytes)
    response = api_client_for(teammate).post(url(project, model, version.number), {"transform": "fp16"}, format="json")
    assert response.status_code == 409
    assert "only a checked" in response.json()["detail"]


def test_optimize__viewer_and_outsider_are_refused(project, model, viewer, outsider):
    version = ready_version(model)
    body = {"transform": "fp16"}
    assert api_client_for(viewer).post(url(project, model, version.number), body, format="json").status_code == 403
    assert api_client_for(outsider).post(url(project, model, version.number), body, format="json").status_code == 404


def test_optimize_for_device__unknown_device_type__is_400(project, model, teammate):
    version = ready_version(model)
    response = api_client_for(teammate).post(
        url(project, model, version.number, "optimize-for-device"), {"device_type": "toaster"}, format="json"
    )
    assert response.status_code == 400
    assert "toaster" in str(response.json()["device_type"])


def test_optimize_for_device__queues_with_budget_and_objective(project, model, teammate):
    version = ready_version(model)
    response = api_client_for(teammate).post(
        url(project, model, version.number, "optimize-for-device"),
        {"device_type": "raspberry-pi-4", "objective": "latency", "accuracy_budget": 0.5},
        format="json",
    )
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["id"])
    assert job.params == {
        "device_type": "raspberry-pi-4",
        "objective": "latency",
        "accuracy_budget": 0.5,
        "dataset": None,
        "fidelity_metrics": {},
        "accept_unverified": False,
    }


def test_transforms__listed_with_defaults(teammate):
    body = api_client_for(teammate).get("/api/transforms/").json()
    by_name = {t["name"]: t for t in body}
    assert by_name["quantize_static"]["needs_dataset"] is True
    assert by_name["prune"]["defaults"] == {"sparsity": 0.5}
    assert "make_runnable" not in by_name  # a job-only transform (it takes a device profile)


def test_optimize__fidelity_metric_chosen_per_output__is_used_and_an_unknown_one_refused(project, model, teammate):
    from jobs.tasks import execute_job

    version = ready_version(model)
    client = api_client_for(teammate)
    refused = client.post(
        url(project, model, version.number),
        {"transform": "quantize_dynamic", "fidelity_metrics": {"y": "vibes"}},
        format="json",
    )
    assert refused.status_code == 400 and "fidelity_metrics" in refused.json()

    output = version.metadata["outputs"][0]["name"]
    response = client.post(
        url(project, model, version.number),
        {"transform": "quantize_dynamic", "fidelity_metrics": {output: "cosine"}},
        format="json",
    )
    assert response.status_code == 202, response.json()
    assert execute_job(response.json()["id"]) == "succeeded"
    job = Job.objects.get(pk=response.json()["id"])
    assert job.output_version.metrics["vs_parent"]["fidelity_metric"] == "cosine"
