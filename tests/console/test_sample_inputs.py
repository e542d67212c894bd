"""A model's representative inputs (sample dataset, typical sizes): set through the API and the model page, used by
the check, labelled where missing; a failed check keeps its facts and can be run again (issue 11, items 1 and 8)."""

from __future__ import annotations

import html

import numpy as np
import pytest
from django.urls import reverse

from console.catalog import services as catalog_services
from console.catalog.samples import inputs_note, representative_inputs
from console.models import CompatibilityResult, Dataset, ModelVersion
from jobs.models import Job
from jobs.tasks import execute_job
from tests.conftest import api_client_for
from tests.console.test_api_datasets import attach, npz_bytes
from tests.jobs.helpers import ready_version, uploaded_version
from tests.jobs.tooling.test_live_runtime import no_kernel_model
from tests.jobs.tooling.test_representative_inputs import image_model, lookup_model

pytestmark = pytest.mark.django_db


def model_url(model) -> str:
    return f"/api/projects/{model.project.slug}/models/{model.name}/"


def recheck_url(version) -> str:
    return f"{model_url(version.model)}versions/{version.number}/recheck/"


def check_job(version) -> Job:
    return Job.objects.filter(input_version=version, kind="check").latest("created_at")


def checked(version) -> ModelVersion:
    execute_job(check_job(version).pk)
    version.refresh_from_db()
    return version


def attached(client, model, name: str, **arrays) -> Dataset:
    response = attach(client, model.project, model, npz_bytes(**arrays), name=f"{name}.npz")
    assert response.status_code == 201, response.json()
    return Dataset.objects.get(pk=response.json()["id"])


def patch(client, model, body):
    return client.patch(model_url(model), body, format="json")


def page(client, version) -> str:
    project = version.model.project
    response = client.get(reverse("version", args=[project.slug, version.model.name, version.number]))
    assert response.status_code == 200
    return response.content.decode()


# -- the API


def test_patch__developer_sets_typical_sizes_and_sample_inputs__the_model_shows_them(model, teammate):
    ready_version(model, image_model().SerializeToString())
    client = api_client_for(teammate)
    dataset = attached(client, model, "photos", image=np.zeros((3, 3, 8, 8), np.float32))

    response = patch(client, model, {"typical_dims": {"height": 640, "width": 480}, "sample_dataset": dataset.pk})

    assert response.status_code == 200, response.json()
    assert response.json()["typical_dims"] == {"height": 640, "width": 480}
    assert response.json()["sample_dataset"] == dataset.pk
    model.refresh_from_db()
    assert (model.typical_dims, model.sample_dataset_id) == ({"height": 640, "width": 480}, dataset.pk)
    assert client.get(model_url(model)).json()["sample_dataset"] == dataset.pk


def test_patch__one_field__leaves_the_other_and_null_clears(model, teammate):
    ready_version(model, image_model().SerializeToString())
    client = api_client_for(teammate)
    dataset = attached(client, model, "photos", image=np.zeros((3, 3, 8, 8), np.float32))
    assert patch(client, model, {"sample_dataset": dataset.pk, "typical_dims": {"width": 32}}).status_code == 200

    assert patch(client, model, {"typical_dims": None}).json() == {
        **patch(client, model, {}).json(),
        "typical_dims": {},
        "sample_dataset": dataset.pk,
    }
    assert patch(client, model, {"sample_dataset": None}).json()["sample_dataset"] is None


@pytest.mark.parametrize(
    ("persona", "status"), [("viewer", 403), ("approver", 403), ("outsider", 404), ("teammate", 200)]
)
def test_patch__roles__only_developers_and_owners_change_it_and_outsiders_see_nothing(request, model, persona, status):
    ready_version(model, image_model().SerializeToString())
    client = api_client_for(request.getfixturevalue(persona))

    response = patch(client, model, {"typical_dims": {"height": "not a number"}} if status != 200 else {})

    assert response.status_code == status
    model.refresh_from_db()
    assert model.typical_dims == {}


def test_patch__dataset_of_another_project__is_a_400_that_leaks_nothing(model, teammate, other_project, outsider):
    from console.catalog.services import create_model

    ready_version(model, image_model().SerializeToString())
    theirs = create_model(project=other_project, name="their-model", user=outsider)
    ready_version(theirs, image_model().SerializeToString())
    their_dataset = attached(api_client_for(outsider), theirs, "secret", image=np.zeros((2, 3, 4, 4), np.float32))
    client = api_client_for(teammate)

    foreign = patch(client, model, {"sample_dataset": their_dataset.pk})
    missing = patch(client, model, {"sample_dataset": their_dataset.pk + 1000})

    assert foreign.status_code == missing.status_code == 400
    assert foreign.json()["sample_dataset"] == [
        f"{model.name} has no dataset {their_dataset.pk}; "
        + ("attach one on the model (its datasets are listed at datasets/) and give its id")
    ]
    assert "secret" not in foreign.content.decode() and "their-model" not in foreign.content.decode()
    model.refresh_from_db()
    assert model.sample_dataset_id is None


def test_patch__typical_sizes_that_do_not_fit__are_refused_naming_each_problem(model, teammate):
    ready_version(model, image_model().SerializeToString())
    client = api_client_for(teammate)

    response = patch(client, model, {"typical_dims": {"depth": 3, "height": -2, "image:1": 3}})

    assert response.status_code == 400
    problems = " ".join(response.json()["typical_dims"])
    assert "v1: 'depth' is not a dynamic dimension of the model's inputs" in problems
    assert "N, height, width" in problems  # what may be set
    assert "the typical size of 'height' must be a whole number of at least 1, not -2" in problems
    assert "'image:1' is not a dynamic dimension" in problems
    too_big = patch(client, model, {"typical_dims": {"height": 5000, "width": 5000}})
    assert too_big.status_code == 400 and "over the limit of 16,777,216" in " ".join(too_big.json()["typical_dims"])


def test_patch__typical_sizes_before_any_checked_version__are_refused_with_what_to_do(model, teammate):
    response = patch(api_client_for(teammate), model, {"typical_dims": {"height": 640}})

    assert response.status_code == 400
    assert "has no checked version yet" in response.json()["typical_dims"][0]


# -- the check runs on them


def test_check__typical_sizes__reach_the_smoke_run(model, teammate, client):
    ready_version(model, image_model().SerializeToString())
    assert patch(api_client_for(teammate), model, {"typical_dims": {"height": 64, "width": 48}}).status_code == 200
    second = image_model()
    second.doc_string = "v2"

    version = checked(uploaded_version(model, second.SerializeToString()))

    assert version.state == ModelVersion.State.READY
    smoke = version.metadata["smoke_run"]
    assert smoke["outputs"][0]["shape"] == [1, 3, 64, 48]
    assert smoke["inputs_source"] == "generated" and "height=64, width=48" in smoke["inputs_description"]
    client.force_login(teammate)
    shown = page(client, version)
    assert "Figures on this page come from generated inputs (random floats (standard normal) and zero integers, " in (
        shown
    )
    assert "dynamic dimensions at the typical sizes height=64, width=48" in shown


def test_check__sample_inputs__are_what_the_smoke_run_feeds(model, teammate, client):
    ready_version(model, lookup_model().SerializeToString())
    api = api_client_for(teammate)
    dataset = attached(api, model, "queries", idx=np.array([1, 2, 3, 9, 0]))
    assert patch(api, model, {"sample_dataset": dataset.pk}).status_code == 200
    second = lookup_model()
    second.doc_string = "v2"

    version = checked(uploaded_version(model, second.SerializeToString()))

    assert version.state == ModelVersion.State.READY, version.error
    smoke = version.metadata["smoke_run"]
    assert smoke["inputs_source"] == "samples" and smoke["inputs"] == {"idx": [5]}
    assert smoke["outputs"][0]["shape"] == [5, 4]
    assert "queries" in check_job(version).log
    client.force_login(teammate)
    shown = page(client, version)
    assert "Run on sample inputs" in shown and "Figures on this page come from generated inputs" not in shown
    assert html.escape("all 5 row(s) of the sample inputs 'queries.npz'") in shown


def test_representative_inputs__follow_the_model_settings(model, teammate):
    version = ready_version(model, lookup_model().SerializeToString())
    api = api_client_for(teammate)

    feeds, source = representative_inputs(version, rows=3)
    assert feeds["idx"].tolist() == [0, 0, 0] and source.generated
    assert inputs_note(model, where="in this job") == (
        "Figures in this job come from generated inputs (random floats (standard normal) and zero integers, every "
        "dynamic dimension set to 1). Attach sample inputs on the model page to measure on real ones."
    )

    dataset = attached(api, model, "queries", idx=np.array([4, 5, 6, 7]))
    assert patch(api, model, {"sample_dataset": dataset.pk}).status_code == 200
    model.refresh_from_db()
    version.model = model

    feeds, source = representative_inputs(version, rows=3)
    assert feeds["idx"].tolist() == [4, 5, 6] and source.kind == "samples"
    assert inputs_note(model) == ""


# -- item 8: a failed check keeps its facts, and a failed version can be checked again


def test_check__session_cannot_be_created__the_failed_version_keeps_its_facts(model, teammate, client):
    version = checked(uploaded_version(model, no_kernel_model().SerializeToString()))

    assert version.state == ModelVersion.State.FAILED and "cannot load the model" in version.error
    facts = version.metadata
    assert facts["inputs"] and facts["outputs"] and "GRUUnit" in facts["operator_histogram"]
    assert "parameters" in facts and "cannot load the model" in facts["smoke_run"]["failed"]
    assert not CompatibilityResult.objects.filter(version=version).exists()
    client.force_login(teammate)
    shown = page(client, version)
    assert "Inputs and outputs" in shown and "GRUUnit" in shown and 'id="recheck-form"' in shown


def test_failed_on_sample_inputs__keeps_its_facts__and_a_recheck_with_working_samples_is_ready(
    model, teammate, viewer, client
):
    ready_version(model, lookup_model().SerializeToString())
    api = api_client_for(teammate)
    bad = attached(api, model, "out-of-range", idx=np.array([0, 50]))
    assert patch(api, model, {"sample_dataset": bad.pk}).status_code == 200
    second = lookup_model()
    second.doc_string = "v2"

    version = checked(uploaded_version(model, second.SerializeToString()))

    assert version.state == ModelVersion.State.FAILED
    assert "a run on its sample inputs failed" in version.error and "out-of-range" in version.error
    assert version.metadata["inputs"] == [{"name": "idx", "dtype": "int64", "shape": ["N"]}]
    assert version.metadata["operator_histogram"] == {"Gather": 1}
    assert version.metadata["smoke_run"]["failed"] == version.error
    client.force_login(teammate)
    shown = page(client, version)
    assert "Run on sample inputs" in shown and "Gather" in shown and 'id="recheck-form"' in shown

    assert api_client_for(viewer).post(recheck_url(version), {}, format="json").status_code == 403
    good = attached(api, model, "in-range", idx=np.array([0, 9, 3]))
    assert patch(api, model, {"sample_dataset": good.pk}).status_code == 200

    response = api.post(recheck_url(version), {}, format="json")

    assert response.status_code == 202, response.json()
    assert (response.json()["kind"], response.json()["state"]) == ("check", "queued")
    version.refresh_from_db()
    assert (version.state, version.error) == (ModelVersion.State.CHECKING, "")
    version = checked(version)
    assert version.state == ModelVersion.State.READY, version.error
    assert version.metadata["smoke_run"]["inputs_source"] == "samples"
    assert CompatibilityResult.objects.filter(version=version).exists()
    assert api.post(recheck_url(version), {}, format="json").status_code == 409  # ready: nothing to do


def test_recheck__version_that_did_not_fail__is_a_409_and_queues_nothing(model, teammate):
    version = ready_version(model)
    jobs_before = Job.objects.count()

    response = api_client_for(teammate).post(recheck_url(version), {}, format="json")

    assert response.status_code == 409 and "only a version whose check failed" in response.json()["detail"]
    assert Job.objects.count() == jobs_before
    with pytest.raises(catalog_services.NotRecheckable):
        catalog_services.recheck_version(version=version)


# -- pages


def test_model_page__developer_gets_the_inputs_form_with_a_row_per_dynamic_dimension(model, teammate, viewer, client):
    ready_version(model, image_model().SerializeToString())
    assert patch(api_client_for(teammate), model, {"typical_dims": {"height": 224}}).status_code == 200
    url = reverse("model", args=[model.project.slug, model.name])

    client.force_login(teammate)
    shown = client.get(url).content.decode()

    assert 'id="inputs-form"' in shown
    for key in ("N", "height", "width"):
        assert f'data-key="{key}"' in shown
    assert 'data-key="height" value="224"' in shown
    assert "dynamic dimensions at the typical sizes height=224" in shown
    client.force_login(viewer)
    assert 'id="inputs-form"' not in client.get(url).content.decode()


def test_version_page__no_sample_inputs__says_its_figures_come_from_generated_inputs(model, viewer, client):
    version = ready_version(model)
    client.force_login(viewer)

    shown = page(client, version)

    assert (
        "Figures on this page come from generated inputs (random floats (standard normal) and zero integers, every "
        "dynamic dimension set to 1 (x [1, 8])). Attach sample inputs on the model page to measure on real ones."
    ) in html.unescape(shown)
    assert 'id="recheck-form"' not in shown
