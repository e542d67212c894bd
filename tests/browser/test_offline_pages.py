"""Every page works offline: no request to any host but the console's own, and no JavaScript error."""

from __future__ import annotations

import pytest

from tests.browser.conftest import ARTIFACTS, PageWatch, sign_in
from tests.devices.fleet_helpers import ready_version

pytestmark = [pytest.mark.browser]


def test_every_page__asks_only_the_console_and_logs_no_error(browser_page, live_server, project, model, owner):
    version = ready_version(model)
    child = ready_version(model, seed=1, parent=version, transform="convert_opset")
    page = browser_page
    watch = PageWatch(page, live_server.url)
    sign_in(page, live_server.url, owner)
    pages = [
        "/",
        f"/p/{project.slug}/",
        f"/p/{project.slug}/m/{model.name}/",
        f"/p/{project.slug}/m/{model.name}/v/{version.number}/",
        f"/p/{project.slug}/m/{model.name}/v/{child.number}/",
        f"/p/{project.slug}/m/{model.name}/delivery/",
        f"/p/{project.slug}/fleet/",
        f"/p/{project.slug}/device-types/",
        f"/p/{project.slug}/audit/",
        f"/p/{project.slug}/jobs/",
        f"/p/{project.slug}/overview/",
        f"/p/{project.slug}/downloads/",
        f"/p/{project.slug}/m/{model.name}/dashboard/",
        "/api/docs/",
    ]
    timings, charted = {}, {}
    for path in pages:
        response = page.goto(live_server.url + path, wait_until="networkidle")
        assert response.status == 200, path
        timings[path] = page.evaluate(
            "[performance.getEntriesByName('first-contentful-paint')[0]?.startTime,"
            " performance.getEntriesByType('navigation')[0].loadEventEnd]"
        )
        # When plotly.js was fetched (ms from the navigation's start), and when the page's load event began.
        plotly = page.evaluate(
            """() => {
              const entry = performance.getEntriesByType('resource').find(r => r.name.includes('/vendor/plotly/'));
              const drawn = performance.getEntriesByName('charts-drawn').length > 0;
              return entry && [entry.startTime, performance.getEntriesByType('navigation')[0].loadEventStart, drawn];
            }"""
        )
        if plotly:
            charted[path] = plotly
        page.screenshot(path=str(ARTIFACTS / f"offline{path.replace('/', '_') or '_home'}.png"), full_page=True)

    # The API reference, whose Swagger UI scripts also come after the page's load, is drawn from the schema.
    page.goto(live_server.url + "/api/docs/", wait_until="load")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "Model delivery console API" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".swagger-ui .opblock").count() > 20  # the operations are listed

    assert watch.foreign == []
    assert watch.errors == []
    # Charts never hold a page's load: plotly.js is fetched after the load event, then the charts are drawn.
    version_page = f"/p/{project.slug}/m/{model.name}/v/{version.number}/"
    assert version_page in charted
    assert all(fetched >= loaded and drawn for fetched, loaded, drawn in charted.values()), charted
    print("first paint / load event (ms, loopback):", timings)
