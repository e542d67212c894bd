"""Project isolation and roles across the developer API."""

from __future__ import annotations

import pytest

from console.projects import services as project_services
from tests.conftest import api_client_for, project_device_type

pytestmark = pytest.mark.django_db


def test_projects__list_shows_only_my_projects_with_my_role(project, other_project, viewer):
    body = api_client_for(viewer).get("/api/projects/").json()
    assert [(p["slug"], p["role"]) for p in body["results"]] == [("kiosk", "viewer")]


def test_projects__create__makes_me_owner(outsider):
    client = api_client_for(outsider)
    response = client.post("/api/projects/", {"slug": "new-app", "name": "New app"}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == "owner"
    assert client.get("/api/projects/new-app/members/").json()["results"][0]["role"] == "owner"


def test_projects__create_with_bad_slug__says_how_to_fix_it(outsider):
    response = api_client_for(outsider).post("/api/projects/", {"slug": "Bad Slug!", "name": "x"}, format="json")
    assert response.status_code == 400
    assert "slug" in response.json()


def test_models__outsider_never_sees_another_projects_models(project, model, outsider, other_project):
    client = api_client_for(outsider)
    assert client.get(f"/api/projects/{project.slug}/models/").status_code == 404
    assert client.get(f"/api/projects/{project.slug}/models/{model.name}/").status_code == 404
    assert client.get(f"/api/projects/{project.slug}/models/{model.name}/versions/").status_code == 404
    assert client.get(f"/api/projects/{project.slug}/jobs/").status_code == 404
    assert client.get(f"/api/projects/{other_project.slug}/models/").json()["results"] == []


def test_models__viewer_can_read_but_not_create(project, model, viewer):
    client = api_client_for(viewer)
    assert [m["name"] for m in client.get(f"/api/projects/{project.slug}/models/").json()["results"]] == [model.name]
    response = client.post(f"/api/projects/{project.slug}/models/", {"name": "new-model"}, format="json")
    assert response.status_code == 403


def test_models__developer_creates_one_and_duplicate_names_are_refused(project, teammate):
    client = api_client_for(teammate)
    url = f"/api/projects/{project.slug}/models/"
    assert client.post(url, {"name": "face-detector"}, format="json").status_code == 201
    duplicate = client.post(url, {"name": "face-detector"}, format="json")
    assert duplicate.status_code == 400
    assert "already exists" in str(duplicate.json())


def test_members__only_owner_manages_and_last_owner_cannot_leave(project, owner, teammate, outsider):
    url = f"/api/projects/{project.slug}/members/"
    assert (
        api_client_for(teammate).post(url, {"username": outsider.username, "role": "viewer"}, format="json").status_code
        == 403
    )
    client = api_client_for(owner)
    assert client.post(url, {"username": outsider.username, "role": "viewer"}, format="json").status_code == 201
    assert api_client_for(outsider).get(f"/api/projects/{project.slug}/").json()["role"] == "viewer"
    response = client.delete(f"{url}{owner.username}/")
    assert response.status_code == 400
    assert "at least one owner" in response.json()["detail"]


def test_device_types__builtins_are_listed_and_project_types_stay_in_their_project(
    project, other_project, teammate, outsider
):
    url = f"/api/projects/{project.slug}/device-types/"
    payload = {
        "slug": "kiosk-v2",
        "name": "Kiosk v2",
        "memory_mb": 2048,
        "storage_mb": 4096,
        "max_model_mb": 50,
        "runtime_version": "1.17",
        "precisions": ["fp32", "int8"],
    }
    assert api_client_for(teammate).post(url, payload, format="json").status_code == 201
    slugs = {d["slug"] for d in api_client_for(teammate).get(url).json()["results"]}
    assert {"raspberry-pi-4", "x86-gateway", "kiosk-v2"} <= slugs
    other = {
        d["slug"]
        for d in api_client_for(outsider).get(f"/api/projects/{other_project.slug}/device-types/").json()["results"]
    }
    assert "kiosk-v2" not in other and "raspberry-pi-4" in other


def test_device_types__bad_precision_and_runtime_are_explained(project, teammate):
    url = f"/api/projects/{project.slug}/device-types/"
    payload = {
        "slug": "odd",
        "name": "Odd",
        "memory_mb": 1,
        "storage_mb": 1,
        "max_model_mb": 1,
        "runtime_version": "latest",
        "precisions": ["fp8"],
    }
    body = api_client_for(teammate).post(url, payload, format="json").json()
    assert "major.minor" in str(body["runtime_version"])
    assert "fp32" in str(body["precisions"])


def test_device_types__builtin_cannot_be_changed_by_a_project_developer(project, teammate):
    url = f"/api/projects/{project.slug}/device-types/raspberry-pi-4/"
    response = api_client_for(teammate).patch(url, {"max_model_mb": 1}, format="json")
    assert response.status_code == 403


def test_api_token__authenticates_and_is_stored_hashed(project, owner):
    from rest_framework.test import APIClient

    from console.models import ApiToken

    token, raw = ApiToken.issue(owner, "ci")
    assert raw not in token.token_hash
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    assert client.get("/api/projects/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token mdc_wrong")
    assert client.get("/api/projects/").status_code == 401


def test_jobs__listed_per_project_and_filtered_by_state(project, model, teammate):
    from jobs.models import Job

    Job.objects.create(project=project, kind="check", state="failed")
    Job.objects.create(project=project, kind="check")
    client = api_client_for(teammate)
    assert client.get(f"/api/projects/{project.slug}/jobs/?state=failed").json()["count"] == 1
    assert client.get(f"/api/projects/{project.slug}/jobs/?state=bogus").status_code == 400


def test_schema__openapi_document_lists_the_upload_endpoint(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/projects/{project}/models/{model}/versions/" in response.content


def test_docs__browsable_docs_are_served_without_a_cdn(client):
    body = client.get("/api/docs/").content.decode()
    assert "swagger" in body.lower()
    assert "cdn" not in body.lower() and "unpkg" not in body.lower()


def test_services__removing_a_member_keeps_the_project(project, viewer):
    membership = project.memberships.get(user=viewer)
    project_services.remove_member(membership=membership)
    assert not project.memberships.filter(user=viewer).exists()


def test_device_types__one_in_use_by_devices__cannot_be_deleted_and_says_why(project, teammate):
    from devices.fleet import services as fleet_services
    from devices.models import DeviceType
    from tests.devices.fleet_helpers import enroll

    project_device_type(project, "kiosk-v2")
    _, key = fleet_services.rotate_enrollment_key(project=project)
    assert enroll(key, device_type="kiosk-v2")[0].status_code == 201

    response = api_client_for(teammate).delete(f"/api/projects/{project.slug}/device-types/kiosk-v2/")
    assert response.status_code == 409
    assert "still used by enrolled devices" in response.json()["detail"]
    assert DeviceType.objects.filter(slug="kiosk-v2").exists()
