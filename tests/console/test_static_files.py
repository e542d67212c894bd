"""Static files load fast and from the console alone: hashed names cached for years, gzip, charts after load."""

from __future__ import annotations

import re
from pathlib import Path

import plotly
import pytest
from django.conf import settings
from django.test import Client

from tests.devices.fleet_helpers import ready_version

pytestmark = pytest.mark.django_db

YEAR = 365 * 24 * 3600


def _plotly_script(body: str) -> str:
    loader = r'<script src="/static/js/charts\.[0-9a-f]{12}\.js" data-plotly="(/static/vendor/plotly/plotly-basic\.min\.[0-9a-f]{12}\.js)">'
    match = re.search(loader, body)
    assert match, "plotly.js is named, with its hashed name, by the charts loader"
    return match.group(1)


def test_version_page__plotly_is_hashed_and_left_to_the_loader_that_fetches_it_after_load(
    client, teammate, project, model
):
    version = ready_version(model)
    client.force_login(teammate)

    body = client.get(f"/p/{project.slug}/m/{model.name}/v/{version.number}/").content.decode()

    _plotly_script(body)
    # No script tag runs plotly.js as part of the page's own load (the browser test sees it fetched after it).
    assert not re.search(r'<script[^>]* src="[^"]*plotly', body)


def test_hashed_static_file__is_sent_gzipped_with_a_year_long_immutable_cache(client, teammate, project, model):
    version = ready_version(model)
    client.force_login(teammate)
    src = _plotly_script(client.get(f"/p/{project.slug}/m/{model.name}/v/{version.number}/").content.decode())

    response = Client().get(src, HTTP_ACCEPT_ENCODING="gzip, deflate, br")

    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert int(response["Content-Length"]) < 500_000  # 1.2 MB uncompressed
    assert response["Cache-Control"] == f"max-age={10 * YEAR}, public, immutable"


def test_vendored_plotly_js__is_the_release_the_plotly_package_builds_figures_for():
    """The server builds figures with the plotly package; the browser draws them with our basic build of plotly.js,
    which must be the same release (static/vendor/plotly/README.md says how to update it)."""
    wheel = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    ours = Path(settings.BASE_DIR) / "static" / "vendor" / "plotly" / "plotly-basic.min.js"

    def release(path: Path) -> str:
        match = re.search(r"plotly\.js (?:\(basic - minified\) )?v(\d+\.\d+\.\d+)", path.read_text()[:300])
        assert match, path
        return match.group(1)

    assert release(ours) == release(wheel)


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
