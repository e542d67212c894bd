"""GET /api/device/v1/download/<version id>: tokens, assignment, Range, identity headers, X-Accel-Redirect."""

from __future__ import annotations

import hashlib
import time

import pytest

from devices.core.signing import make_download_token
from devices.fleet.keys import download_secret
from devices.rules import services as rules_services
from tests.devices.fleet_helpers import API, checkin, device_client, enroll, ready_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def assigned(enrolled, model, ready_v1):
    """The enrolled device's client and the download URL of v1 it was just assigned."""
    _, token, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1)
    client = device_client(token)
    url = checkin(client, config).json()["models"]["digit-classifier"]["manifest"]["download_url"]
    return client, url


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_download__whole_file__with_identity_headers(assigned, ready_v1):
    client, url = assigned

    response = client.get(url)

    assert response.status_code == 200
    data = body_of(response)
    assert hashlib.sha256(data).hexdigest() == ready_v1.sha256
    assert response["ETag"] == f'"{ready_v1.sha256}"'
    assert response["X-Content-SHA256"] == ready_v1.sha256
    assert response["Content-Length"] == str(ready_v1.size_bytes)
    assert response["Accept-Ranges"] == "bytes"


def test_download__open_range__resumes_with_206(assigned, ready_v1):
    client, url = assigned

    response = client.get(url, HTTP_RANGE="bytes=100-", HTTP_IF_RANGE=f'"{ready_v1.sha256}"')

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-{ready_v1.size_bytes - 1}/{ready_v1.size_bytes}"
    assert response["Content-Length"] == str(ready_v1.size_bytes - 100)
    assert body_of(response) == ready_v1.file.open("rb").read()[100:]


@pytest.mark.parametrize("header", ["bytes=" + "9" * 5000 + "-", "bytes=-" + "1" * 5000, "bytes=0-" + "7" * 19])
def test_download__range_with_absurdly_long_numbers__is_ignored_and_the_whole_file_sent(assigned, ready_v1, header):
    client, url = assigned

    response = client.get(url, HTTP_RANGE=header)

    assert response.status_code == 200
    assert body_of(response) == ready_v1.file.open("rb").read()


def test_download__closed_range__sends_just_those_bytes(assigned, ready_v1):
    client, url = assigned

    response = client.get(url, HTTP_RANGE="bytes=10-19")

    assert response.status_code == 206
    assert response["Content-Length"] == "10"
    assert body_of(response) == ready_v1.file.open("rb").read()[10:20]


def test_download__if_range_of_other_bytes__sends_the_whole_file(assigned, ready_v1):
    client, url = assigned

    response = client.get(url, HTTP_RANGE="bytes=100-", HTTP_IF_RANGE='"' + "0" * 64 + '"')

    assert response.status_code == 200
    assert len(body_of(response)) == ready_v1.size_bytes


def test_download__range_beyond_the_file__is_416(assigned, ready_v1):
    client, url = assigned

    response = client.get(url, HTTP_RANGE=f"bytes={ready_v1.size_bytes}-")

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{ready_v1.size_bytes}"


def test_download__changed_version_id__is_403(assigned, model, ready_v1):
    client, url = assigned
    v2 = ready_version(model, seed=1)

    response = client.get(url.replace(f"/download/{ready_v1.pk}?", f"/download/{v2.pk}?"))

    assert response.status_code == 403
    assert response.json()["detail"].startswith("download token wrong version")


@pytest.mark.parametrize(("change", "reason"), [("expired", "expired"), ("tampered", "tampered")])
def test_download__expired_or_tampered_token__is_403_with_the_reason(assigned, ready_v1, change, reason):
    client, url = assigned
    if change == "expired":
        token = make_download_token(
            download_secret(), version_id=ready_v1.pk, device_id="device-1", expires_at=int(time.time()) - 1
        )
        url = f"{API}/download/{ready_v1.pk}?token={token}"
    else:
        payload, mac = url.split("token=")[1].split(".")
        url = url.replace(payload, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"))

    response = client.get(url)

    assert response.status_code == 403
    assert response.json()["detail"].startswith(f"download token {reason}")


def test_download__another_devices_url__is_403(assigned, enrollment_key):
    _, url = assigned
    other, _ = enroll(enrollment_key, device_id="device-2")

    response = device_client(other.json()["device_token"]).get(url)

    assert response.status_code == 403
    assert "wrong device" in response.json()["detail"]


def test_download__version_no_longer_assigned__is_403(assigned, model, ready_v1):
    client, _ = assigned
    v2 = ready_version(model, seed=1)
    token = make_download_token(
        download_secret(), version_id=v2.pk, device_id="device-1", expires_at=int(time.time()) + 60
    )

    response = client.get(f"{API}/download/{v2.pk}?token={token}")

    assert response.status_code == 403
    assert "not assigned to this device" in response.json()["detail"]


def test_download__without_device_token__is_401(assigned):
    from rest_framework.test import APIClient

    _, url = assigned
    assert APIClient().get(url).status_code == 401


def test_download__accel_redirect_setting__hands_the_file_to_nginx(assigned, ready_v1, settings):
    client, url = assigned
    settings.DEVICE_DOWNLOAD_ACCEL_REDIRECT = "/protected-media/"

    response = client.get(url, HTTP_RANGE="bytes=100-")

    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/protected-media/{ready_v1.file.name}"
    assert response["X-Content-SHA256"] == ready_v1.sha256
    assert response.content == b""


def test_download__valid_token_for_another_projects_version__is_still_refused(assigned, other_project, outsider):
    """Even a correctly signed token (were the secret to leak) does not reach a version never assigned."""
    from console.catalog import services as catalog_services

    client, _ = assigned
    theirs = ready_version(catalog_services.create_model(project=other_project, name="secret", user=outsider))
    token = make_download_token(
        download_secret(), version_id=theirs.pk, device_id="device-1", expires_at=int(time.time()) + 60
    )

    response = client.get(f"{API}/download/{theirs.pk}?token={token}")

    assert response.status_code == 403
    assert "not assigned to this device" in response.json()["detail"]
