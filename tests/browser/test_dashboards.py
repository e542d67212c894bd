"""The dashboards of a seeded fleet in a real browser: the plotted points, a filter, the CSV, no console error."""

from __future__ import annotations

import csv
import io

import pytest

from tests.browser.conftest import ARTIFACTS, PageWatch, sign_in
from tests.devices.dashboard_fleet import seed_dashboard_fleet

pytestmark = [pytest.mark.browser]

SHOTS = ARTIFACTS / "dashboards"


def figure(page, chart_id: str) -> dict[str, dict]:
    """The traces plotly drew in the page, by name: read from the chart element itself."""
    page.wait_for_selector(f"#figure-{chart_id} .main-svg")
    traces = page.evaluate(
        f"document.getElementById('figure-{chart_id}').data.map(t => ({{name: t.name, x: t.x, y: t.y}}))"
    )
    return {trace["name"]: trace for trace in traces}


def csv_of(page, chart_id: str) -> list[list[str]]:
    href = page.get_attribute(f"#csv-{chart_id}", "href")
    text = page.evaluate("url => fetch(url, {credentials: 'same-origin'}).then(r => r.text())", href)
    return list(csv.reader(io.StringIO(text)))


def test_dashboards__plot_the_fleets_numbers_follow_filters_and_export_the_same_csv(
    browser_page, live_server, project, model, viewer
):
    seed_dashboard_fleet(project, model)
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {SHOTS}")
    page = browser_page
    watch = PageWatch(page, live_server.url)
    sign_in(page, live_server.url, viewer, "/p/kiosk/overview/?days=7")

    funnel = figure(page, "funnel")
    assert funnel["offered"]["y"][-1] == 3 and funnel["failed"]["y"][-1] == 2 and funnel["installed"]["y"][-1] == 1
    reasons = figure(page, "failure_reasons")["failures"]
    assert dict(zip(reasons["x"], reasons["y"], strict=True))["checksum"] == 1
    rows = csv_of(page, "funnel")
    assert [int(v) for v in rows[-1][1:]] == [funnel[name]["y"][-1] for name in rows[0][1:]]
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

    page.select_option("#dashboard-filters select[name=region]", "DE")
    page.click("#dashboard-filters button")
    page.wait_for_url("**region=DE**")
    funnel = figure(page, "funnel")
    assert funnel["offered"]["y"][-1] == 1 and funnel["failed"]["y"][-1] == 0
    assert [int(v) for v in csv_of(page, "funnel")[-1][1:]] == [1, 1, 1, 0, 1]
    page.screenshot(path=str(SHOTS / "overview-DE.png"), full_page=True)

    page.goto(f"{live_server.url}/p/kiosk/downloads/?days=7&stuck_hours=1")
    status = figure(page, "download_status")
    offered = dict(zip(status["offered"]["x"], status["offered"]["y"], strict=True))
    assert offered == {"digit-classifier v1 · raspberry-pi-4": 1, "digit-classifier v1 · x86-gateway": 2}
    table = csv_of(page, "download_status")
    assert [row[2] for row in table[1:]] == ["1", "2"]  # offered, in the chart's order
    assert sorted(page.locator("#stuck-devices a").all_inner_texts()) == ["kiosk-fr", "pi-fr"]
    page.screenshot(path=str(SHOTS / "downloads.png"), full_page=True)

    page.goto(f"{live_server.url}/p/kiosk/m/{model.name}/dashboard/")
    ratio = figure(page, "latency_ratio")
    assert ratio["x86-gateway"]["y"][0] == 2.0
    page.screenshot(path=str(SHOTS / "versions-compared.png"), full_page=True)

    assert watch.errors == []
    assert watch.foreign == []
