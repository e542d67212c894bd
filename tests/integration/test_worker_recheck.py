"""A failed version checked again through the API, with sample inputs attached since, by a real Celery worker."""

from __future__ import annotations

import numpy as np
import pytest

from console.models import Dataset, ModelVersion
from tests.conftest import api_client_for
from tests.console.test_api_datasets import attach, npz_bytes
from tests.integration.conftest import wait_for
from tests.jobs.helpers import uploaded_version
from tests.jobs.tooling.test_representative_inputs import lookup_model

pytestmark = pytest.mark.worker


def test_recheck_with_working_sample_inputs__real_worker_makes_the_failed_version_ready(
    celery_worker_process, project, model, teammate
):
    client = api_client_for(teammate)
    url = f"/api/projects/{project.slug}/models/{model.name}/"

    def settled(version) -> ModelVersion:
        wait_for(lambda: ModelVersion.objects.get(pk=version.pk).state != "checking", message="the check to end")
        version.refresh_from_db()
        return version

    assert settled(uploaded_version(model, lookup_model().SerializeToString())).state == "ready"

    def sample(name, idx):
        response = attach(client, project, model, npz_bytes(idx=np.array(idx)), name=name)
        assert response.status_code == 201, response.json()
        assert client.patch(url, {"sample_dataset": response.json()["id"]}, format="json").status_code == 200
        return Dataset.objects.get(pk=response.json()["id"])

    sample("out-of-range.npz", [0, 50])
    second = lookup_model()
    second.doc_string = "v2"
    version = settled(uploaded_version(model, second.SerializeToString()))
    assert version.state == "failed" and "a run on its sample inputs failed" in version.error
    assert version.metadata["operator_histogram"] == {"Gather": 1}

    sample("in-range.npz", [0, 9, 3])
    assert client.post(f"{url}versions/{version.number}/recheck/", {}, format="json").status_code == 202
    version = settled(version)
    assert version.state == "ready", version.error
    assert version.metadata["smoke_run"]["inputs_source"] == "samples"
