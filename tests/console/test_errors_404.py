"""A URL no route matches answers in the shape its client parses: JSON under /api/, a page elsewhere."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_unmatched_api_url__is_a_json_404(client, owner, project, model):
    client.force_login(owner)

    response = client.get(f"/api/projects/{project.slug}/models/{model.name}/rollouts/-1/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found: no API route matches this URL."}


def test_unmatched_page_url__is_an_html_404(client, owner):
    client.force_login(owner)

    response = client.get("/p/no-such-page/at/all/-1/")

    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
