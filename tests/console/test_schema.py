"""The OpenAPI schema says what the API really returns."""

from __future__ import annotations

import pytest

from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def schemas(teammate) -> dict:
    response = api_client_for(teammate).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()["components"]["schemas"]


@pytest.mark.parametrize(
    ("schema", "field"), [("Model", "latest_version"), ("Version", "parent"), ("VersionDetail", "parent")]
)
def test_schema__fields_the_api_returns_as_null__are_nullable(schemas, schema, field):
    assert schemas[schema]["properties"][field].get("nullable") is True


def test_model_without_versions_and_uploaded_version__really_return_null(project, model, teammate):
    from tests.jobs.helpers import ready_version

    client = api_client_for(teammate)
    assert client.get(f"/api/projects/{project.slug}/models/{model.name}/").json()["latest_version"] is None
    version = ready_version(model)
    body = client.get(f"/api/projects/{project.slug}/models/{model.name}/versions/{version.number}/").json()
    assert body["parent"] is None
