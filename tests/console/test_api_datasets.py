"""Attaching datasets: checked against the model's inputs, every mismatch named."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from console.models import Dataset
from tests.conftest import api_client_for, stored_files
from tests.jobs.helpers import ready_version

pytestmark = pytest.mark.django_db


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def attach(client, project, model, payload: bytes, name="data.npz", **fields):
    return client.post(
        f"/api/projects/{project.slug}/models/{model.name}/datasets/",
        {"file": SimpleUploadedFile(name, payload), **fields},
        format="multipart",
    )


@pytest.fixture
def checked(model):
    return ready_version(model)


def test_dataset__npz_matching_the_inputs__is_attached_with_its_summary(project, model, checked, teammate):
    rng = np.random.default_rng(0)
    response = attach(
        api_client_for(teammate),
        project,
        model,
        npz_bytes(x=rng.standard_normal((20, 8)).astype(np.float32), labels=np.arange(20) % 4),
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["rows"], body["has_labels"], body["format"]) == (20, True, "npz")
    assert body["summary"]["arrays"]["x"]["shape"] == [20, 8]


def test_dataset__csv_with_label_column__is_attached(project, model, checked, teammate):
    header = ",".join(f"f{i}" for i in range(8)) + ",label\n"
    rows = "".join(",".join(["0.5"] * 8) + f",{i % 4}\n" for i in range(10))
    response = attach(api_client_for(teammate), project, model, (header + rows).encode(), name="data.csv")
    assert response.status_code == 201, response.json()
    assert response.json()["format"] == "csv" and response.json()["rows"] == 10


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"inputs": np.zeros((4, 8), np.float32)}, "missing array for input 'x'"),
        ({"x": np.zeros((4, 7), np.float32)}, "x"),
        ({"x": np.zeros((4, 8), np.float32), "labels": np.zeros(5)}, "row counts differ"),
        ({"x": np.full((4, 8), np.nan, np.float32)}, "NaN"),
        ({"x": np.array([["a"] * 8] * 4)}, "x"),
    ],
    ids=["wrong-name", "wrong-shape", "row-counts", "nans", "strings"],
)
def test_dataset__not_matching_the_inputs__is_refused_naming_the_problem(
    project, model, checked, teammate, isolated_storage, arrays, expected
):
    before = set(stored_files(isolated_storage))
    response = attach(api_client_for(teammate), project, model, npz_bytes(**arrays))
    assert response.status_code == 400
    assert expected in " ".join(response.json()["problems"])
    assert set(stored_files(isolated_storage)) == before
    assert not Dataset.objects.exists()


def test_dataset__csv_with_non_numeric_cells__names_the_cells(project, model, checked, teammate):
    header = ",".join(f"f{i}" for i in range(8)) + ",label\n"
    body = header + ",".join(["0.5"] * 7 + ["oops"]) + ",1\n"
    response = attach(api_client_for(teammate), project, model, body.encode(), name="bad.csv")
    assert response.status_code == 400
    assert "oops" in " ".join(response.json()["problems"])


def test_dataset__pickled_object_array__is_refused_not_unpickled(project, model, checked, teammate):
    payload = npz_bytes(x=np.array([{"evil": 1}] * 4, dtype=object))
    response = attach(api_client_for(teammate), project, model, payload)
    assert response.status_code == 400


def test_dataset__before_any_checked_version__says_to_upload_a_model_first(project, model, teammate):
    response = attach(api_client_for(teammate), project, model, npz_bytes(x=np.zeros((4, 8), np.float32)))
    assert response.status_code == 400
    assert "no checked version" in " ".join(response.json()["problems"])


def test_dataset__viewer_cannot_attach(project, model, checked, viewer):
    response = attach(api_client_for(viewer), project, model, npz_bytes(x=np.zeros((4, 8), np.float32)))
    assert response.status_code == 403
