"""Static files load fast and from the console alone: hashed names cached for years, gzip, deferred charts."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.devices.fleet_helpers import ready_version

pytestmark = pytest.mark.django_db

YEAR = 365 * 24 * 3600


def _plotly_script(body: str) -> str:
    match = re.search(r'<script defer src="(/static/vendor/plotly/plotly\.min\.[0-9a-f]{12}\.js)"></script>', body)
    assert match, "plotly.js is linked with its hashed name and deferred"
    return match.group(1)


def test_version_page__plotly_is_hashed_deferred_and_outside_head(client, teammate, project, model):
    version = ready_version(model)
    client.force_login(teammate)

    body = client.get(f"/p/{project.slug}/m/{model.name}/v/{version.number}/").content.decode()

    src = _plotly_script(body)
    head = body.split("</head>")[0]
    assert "plotly" not in head
    assert body.index(src) > body.index("<main>")


def test_hashed_static_file__is_sent_gzipped_with_a_year_long_immutable_cache(client, teammate, project, model):
    version = ready_version(model)
    client.force_login(teammate)
    src = _plotly_script(client.get(f"/p/{project.slug}/m/{model.name}/v/{version.number}/").content.decode())

    response = Client().get(src, HTTP_ACCEPT_ENCODING="gzip, deflate, br")

    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert int(response["Content-Length"]) < 2_000_000  # 4.6 MB uncompressed
    assert response["Cache-Control"] == f"max-age={10 * YEAR}, public, immutable"


def test_favicon__is_served_at_the_root():
    response = Client().get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO header


def test_api_docs__link_nothing_outside_the_console():
    body = Client().get("/api/docs/").content.decode()

    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', body)
    assert external == []
    assert "fonts.googleapis" not in body


def test_redoc__leads_to_the_docs_page_served_from_here():
    response = Client().get("/api/redoc/")

    assert response.status_code == 301
    assert response["Location"] == "/api/docs/"
