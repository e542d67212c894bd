"""Dashboards of a seeded fleet: the numbers each chart plots, filters, CSV equal to the chart, empty states."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from tests.devices.dashboard_fleet import seed_dashboard_fleet

pytestmark = pytest.mark.django_db

OVERVIEW = "/p/kiosk/overview/"
DOWNLOADS = "/p/kiosk/downloads/"
MODEL_DASHBOARD = "/p/kiosk/m/digit-classifier/dashboard/"


@pytest.fixture
def fleet(project, model):
    return seed_dashboard_fleet(project, model)


@pytest.fixture
def viewer_client(viewer):
    client = Client()
    client.force_login(viewer)
    return client


def chart(response, chart_id):
    return next(c for c in response.context["charts"] if c.id == chart_id)


def csv_rows(client, url, params):
    response = client.get(url, {**params, "csv": params["chart"]} if "chart" in params else params)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def trace(figure_data, name):
    return next(t for t in figure_data["data"] if t["name"] == name)


def test_overview__funnel_counts_offers_downloads_failures_and_installs(fleet, viewer_client):
    response = viewer_client.get(OVERVIEW, {"days": 7})

    funnel = chart(response, "funnel")
    last = funnel.rows[-1]
    assert funnel.columns == ["day", "offered", "download started", "downloaded", "failed", "installed"]
    assert last[1:] == [3, 3, 1, 2, 1]
    assert trace(funnel.figure_data, "offered")["y"][-1] == 3
    reasons = dict(chart(response, "failure_reasons").rows)
    assert (reasons["checksum"], reasons["network"], reasons["disk space"]) == (1, 1, 0)
    assert response.context["devices"]["enrolled"] == 3


def test_overview__region_filter_changes_every_chart(fleet, viewer_client):
    response = viewer_client.get(OVERVIEW, {"days": 7, "region": "DE"})

    assert chart(response, "funnel").rows[-1][1:] == [1, 1, 1, 0, 1]
    assert dict(chart(response, "failure_reasons").rows)["checksum"] == 0
    assert chart(response, "devices_by_region").rows == [["DE", 1]]
    assert response.context["devices"]["enrolled"] == 1


def test_overview__versions_failing_downloads_are_marked_failing(fleet, viewer_client):
    response = viewer_client.get(OVERVIEW)

    failing = chart(response, "failing_versions")
    assert failing.rows == [["digit-classifier v1", 3, 2, 66.7, 1, 0, 0.0]]
    assert failing.highlight == {0}
    assert "<strong>failing</strong>" in response.content.decode()


def test_csv__holds_exactly_the_numbers_the_chart_plots(fleet, viewer_client):
    params = {"days": "7", "app_version": "2.3.1"}
    response = viewer_client.get(OVERVIEW, params)
    funnel = chart(response, "funnel")

    rows = csv_rows(viewer_client, OVERVIEW, {**params, "chart": "funnel"})

    assert rows[0] == funnel.columns
    assert rows[1:] == [[str(v) for v in row] for row in funnel.rows]
    assert [int(v) for v in rows[-1][1:]] == [2, 2, 1, 1, 1]


def test_download_status__per_version_and_device_type_with_reasons_and_median(fleet, viewer_client):
    response = viewer_client.get(DOWNLOADS, {"days": 7})

    status = chart(response, "download_status")
    by_type = {row[1]: row for row in status.rows}
    columns = status.columns
    x86, pi = by_type["x86-gateway"], by_type["raspberry-pi-4"]
    assert (x86[columns.index("offered")], x86[columns.index("downloaded")], x86[columns.index("installed")]) == (
        2,
        1,
        1,
    )
    assert x86[columns.index("failed: network")] == 1 and pi[columns.index("failed: checksum")] == 1
    assert x86[columns.index("median offer to install (min)")] == 10.0
    assert pi[columns.index("median offer to install (min)")] is None


def test_download_status__lists_stuck_devices_with_links(fleet, viewer_client):
    response = viewer_client.get(DOWNLOADS, {"stuck_hours": 1})

    stuck = sorted(s.device_id for s in response.context["stuck"])
    assert stuck == ["kiosk-fr", "pi-fr"]
    assert 'href="/p/kiosk/fleet/pi-fr/"' in response.content.decode()


def test_model_dashboard__on_device_latency_over_server_benchmark_per_device_type(fleet, viewer_client):
    response = viewer_client.get(MODEL_DASHBOARD)

    ratio = chart(response, "latency_ratio")
    row = next(r for r in ratio.rows if r[:2] == ["v1", "x86-gateway"])
    assert row[2:] == [fleet["v1"].size_bytes, 900, 2.0, None, 4.0, None, 2.0]
    assert trace(ratio.figure_data, "x86-gateway")["y"][0] == 2.0
    body = response.content.decode()
    assert "convert_opset" in body  # the lineage edge v1 -> v2
    assert body.count("✓ runs") >= 2  # both versions in the compatibility matrix


def test_dashboards__empty_project__say_what_to_do(project, viewer_client):
    body = viewer_client.get(OVERVIEW).content.decode()

    assert "No device has reported yet" in body and "model-agent enroll" in body
    assert "No device is stuck" in viewer_client.get(DOWNLOADS).content.decode()


def test_dashboards__bad_filter_or_chart__is_a_4xx_with_a_message(project, viewer_client):
    page = viewer_client.get(OVERVIEW, {"days": "5", "region": "germany"})
    assert page.status_code == 200
    assert "days" in page.context["filter_errors"] and "region" in page.context["filter_errors"]
    unknown = viewer_client.get(OVERVIEW, {"csv": "nope"})
    assert unknown.status_code == 400 and "choose one of: funnel" in unknown.content.decode()


def test_dashboards__outsider_gets_404(project, outsider):
    client = Client()
    client.force_login(outsider)
    assert client.get(OVERVIEW).status_code == 404
    assert client.get(MODEL_DASHBOARD).status_code == 404


def test_dashboards__a_revoked_device__stays_a_filter_option_but_counts_nowhere(fleet, viewer_client, other_project):
    from django.utils.timezone import now

    from devices.fleet import services as fleet_services
    from devices.models import Device, DeviceType

    fleet_services.revoke_device(device=Device.objects.get(device_id="kiosk-fr"))
    Device.objects.create(  # another project's device: never an option here
        project=other_project, device_id="theirs", token_hash="0" * 64, fingerprint="0" * 64,
        device_type=DeviceType.objects.get(slug="jetson-orin"), region="JP", app_version="9.9.9", enrolled_at=now(),
    )  # fmt: skip

    responses = [viewer_client.get(url) for url in (OVERVIEW, DOWNLOADS, MODEL_DASHBOARD)]

    for response in responses:
        assert response.context["choices"] == {
            "device_types": ["raspberry-pi-4", "x86-gateway"],
            "regions": ["DE", "FR"],
            "app_versions": ["2.3.1", "3.0.0"],
        }
    overview = responses[0]
    assert overview.context["devices"]["enrolled"] == 2
    assert chart(overview, "devices_by_type").rows == [["raspberry-pi-4", 1], ["x86-gateway", 1]]
    assert chart(overview, "devices_by_region").rows == [["DE", 1], ["FR", 1]]
    assert chart(overview, "devices_by_version").rows == [["digit-classifier v1", 1]]
