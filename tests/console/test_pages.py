"""Server-rendered pages honour the same isolation and roles as the API."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client):
    def sign_in(user):
        client.force_login(user)
        return client

    return sign_in


def test_pages__anonymous_is_sent_to_sign_in(client, project):
    response = client.get(f"/p/{project.slug}/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_pages__outsider_gets_404_for_another_project(signed_in, project, model, outsider):
    c = signed_in(outsider)
    assert c.get(f"/p/{project.slug}/").status_code == 404
    assert c.get(f"/p/{project.slug}/m/{model.name}/").status_code == 404


def test_pages__viewer_sees_the_model_but_no_upload_form(signed_in, project, model, viewer):
    body = signed_in(viewer).get(f"/p/{project.slug}/m/{model.name}/").content.decode()
    assert model.name in body
    assert 'id="upload-form"' not in body


def test_pages__developer_sees_the_upload_form(signed_in, project, model, teammate):
    body = signed_in(teammate).get(f"/p/{project.slug}/m/{model.name}/").content.decode()
    assert 'id="upload-form"' in body


def test_pages__viewer_cannot_create_a_model_by_posting(signed_in, project, viewer):
    response = signed_in(viewer).post(f"/p/{project.slug}/", {"name": "sneaky"})
    assert response.status_code == 403
    assert not project.models.filter(name="sneaky").exists()


def test_pages__home_lists_projects_and_creates_one(signed_in, project, outsider):
    c = signed_in(outsider)
    assert "Kiosk app" not in c.get("/").content.decode()
    response = c.post("/", {"slug": "mine", "name": "Mine"})
    assert response.status_code == 302 and response["Location"] == "/p/mine/"


def test_pages__version_page_shows_matrix_and_facts(signed_in, project, model, teammate, mlp_bytes):
    from console.catalog import services as catalog_services
    from console.catalog.uploads import temporary_upload
    from jobs.models import Job
    from jobs.tasks import execute_job

    with temporary_upload("m.onnx", mlp_bytes) as upload:
        version = catalog_services.upload_version(model=model, uploaded=upload)
    execute_job(Job.objects.get(input_version=version).pk)
    body = signed_in(teammate).get(f"/p/{project.slug}/m/{model.name}/v/1/").content.decode()
    assert "Raspberry Pi 4" in body and "x86-64 edge gateway" in body
    assert version.sha256 in body
    # The Jetson row says where the nodes run: every operator of this MLP has a CUDA kernel.
    jetson = version.compatibility.get(device_type__slug="jetson-orin").placement
    assert jetson["on_accelerator"] == jetson["nodes"] > 0
    assert f"{jetson['nodes']} of {jetson['nodes']} nodes on CUDA" in body
    assert "/static/vendor/plotly/plotly-basic.min." in body


def test_project_and_version_pages__queued_check_with_no_worker__say_it_waits_for_a_worker(
    signed_in, project, model, teammate, mlp_bytes
):
    from tests.jobs.helpers import uploaded_version

    version = uploaded_version(model, mlp_bytes)  # its check job is queued; no worker runs in this test
    c = signed_in(teammate)

    assert "waiting for a worker" in c.get(f"/p/{project.slug}/").content.decode()
    assert "waiting for a worker" in c.get(f"/p/{project.slug}/m/{model.name}/v/{version.number}/").content.decode()
