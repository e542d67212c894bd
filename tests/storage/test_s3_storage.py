"""Model files on S3-compatible storage (a real moto server over HTTP): uploads, jobs, variants, device downloads."""

from __future__ import annotations

import hashlib
import json
import tempfile
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from console.catalog import services as catalog_services
from console.catalog.uploads import temporary_upload
from console.jobkinds import services as jobkind_services
from console.models import ModelVersion
from devices.agent.download import download_package
from devices.agent.errors import DownloadError
from devices.agent.transport import Transport
from devices.fleet import services as fleet_services
from devices.rules import services as rules_services
from jobs.models import Job
from jobs.tasks import execute_job
from tests.conftest import api_client_for, make_mlp, stored_files
from tests.devices.fleet_helpers import checked, checkin, device_client, enroll

pytestmark = pytest.mark.django_db


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(client, project, model, payload: bytes):
    url = f"/api/projects/{project.slug}/models/{model.name}/versions/"
    return client.post(url, {"file": SimpleUploadedFile("model.onnx", payload)}, format="multipart")


def ready_version(model, payload: bytes) -> ModelVersion:
    with temporary_upload("model.onnx", payload) as uploaded:
        return checked(catalog_services.upload_version(model=model, uploaded=uploaded))


def fetch(url: str, headers: dict[str, str] | None = None):
    """A plain HTTP client, as a device would follow the redirect (no proxy: everything here is loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(urllib.request.Request(url, headers=headers or {}), timeout=30)


@pytest.fixture
def payload() -> bytes:
    return make_mlp(hidden=64).SerializeToString()


@pytest.fixture
def assigned(bucket, project, model, payload):
    """A device assigned v1 (stored in the bucket): its API client, token, the download URL and the version."""
    _, key = fleet_services.rotate_enrollment_key(project=project)
    response, config = enroll(key)
    assert response.status_code == 201, response.content
    token = response.json()["device_token"]
    version = ready_version(model, payload)
    rules_services.create_rule(model=model, version=version)
    client = device_client(token)
    manifest = checkin(client, config).json()["models"]["digit-classifier"]["manifest"]
    return client, token, manifest["download_url"], version


# --- uploads ---------------------------------------------------------------------------------------------


def test_upload__valid_model__is_stored_as_one_object_in_the_bucket(
    bucket, project, model, teammate, payload, isolated_storage
):
    response = upload(api_client_for(teammate), project, model, payload)

    assert response.status_code == 201, response.json()
    version = ModelVersion.objects.get(model=model, number=1)
    assert bucket.keys() == [version.file.name]
    assert sha256(bucket.read(version.file.name)) == version.sha256 == sha256(payload)
    assert version.size_bytes == len(payload)
    assert stored_files(isolated_storage) == []  # nothing went to the local folder


def test_upload__not_a_model__is_refused_and_leaves_no_object(bucket, project, model, teammate):
    response = upload(api_client_for(teammate), project, model, b"this is not an onnx model")

    assert response.status_code == 400
    assert bucket.keys() == []
    assert not ModelVersion.objects.filter(model=model).exists()


def test_register__same_file_twice__keeps_the_first_versions_object(bucket, model, payload):
    first = catalog_services.register_version(
        model=model, source=ContentFile(payload, name="a.onnx"), sha256=sha256(payload)
    )

    # A second registration of the same bytes (a race the duplicate check did not see) fails on the database's
    # unique constraint and removes what it stored: its own object, never the first version's.
    with pytest.raises(catalog_services.DuplicateVersion):
        catalog_services.register_version(
            model=model, source=ContentFile(payload, name="b.onnx"), sha256=sha256(payload)
        )

    assert bucket.keys() == [first.file.name]
    assert sha256(bucket.read(first.file.name)) == first.sha256


# --- jobs on stored files --------------------------------------------------------------------------------


def test_check_job__on_an_object_in_the_bucket__succeeds_and_leaves_no_temporary_copy(
    bucket, project, model, teammate, payload, tmp_path, monkeypatch
):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the worker's temporary copy goes
    assert upload(api_client_for(teammate), project, model, payload).status_code == 201
    job = Job.objects.get(kind="check")

    outcome = execute_job(job.pk)

    job.refresh_from_db()
    assert outcome == "succeeded", job.error
    version = job.input_version
    version.refresh_from_db()
    assert version.state == ModelVersion.State.READY
    assert version.metadata["smoke_run"]
    assert version.compatibility.filter(compatible=True).exists()
    assert list(scratch.iterdir()) == []


def test_optimize_job__stores_its_variant_in_the_bucket(bucket, model):
    parent = ready_version(model, make_mlp(hidden=256).SerializeToString())
    job = jobkind_services.queue_optimization(
        version=parent, kind="optimize", params={"transform": "quantize_dynamic", "params": {}}
    )

    outcome = execute_job(job.pk)

    job.refresh_from_db()
    assert outcome == "succeeded", job.error
    child = job.output_version
    assert bucket.keys() == sorted([parent.file.name, child.file.name])
    assert sha256(bucket.read(child.file.name)) == child.sha256
    assert checked(child).state == ModelVersion.State.READY  # the variant's own check reads it from the bucket


# --- device downloads ------------------------------------------------------------------------------------


def test_device_download__redirects_to_a_short_lived_presigned_url_that_serves_the_bytes(assigned, s3_endpoint):
    client, _, url, version = assigned

    response = client.get(url)

    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-SHA256"] == version.sha256
    location = response["Location"]
    assert location.startswith(s3_endpoint + "/")
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == ["300"]
    with fetch(location) as answer:
        data = answer.read()
        assert answer.status == 200
        assert f"digit-classifier-v{version.number}.onnx" in answer.headers["Content-Disposition"]
    assert sha256(data) == version.sha256


def test_device_download__range_after_the_redirect__is_answered_by_the_store(assigned):
    client, _, url, version = assigned
    whole = version.file.open("rb").read()

    location = client.get(url, HTTP_RANGE="bytes=100-")["Location"]
    with fetch(location, {"Range": "bytes=100-"}) as answer:
        assert answer.status == 206
        assert answer.headers["Content-Range"] == f"bytes 100-{len(whole) - 1}/{len(whole)}"
        assert answer.read() == whole[100:]


def test_device_download__stream_mode__sends_the_bytes_and_ranges_through_the_console(assigned, settings):
    settings.STORAGE_DOWNLOADS = "stream"
    client, _, url, version = assigned

    whole = client.get(url)
    part = client.get(url, HTTP_RANGE="bytes=10-19", HTTP_IF_RANGE=f'"{version.sha256}"')

    data = b"".join(whole.streaming_content)
    assert whole.status_code == 200 and whole["ETag"] == f'"{version.sha256}"'
    assert sha256(data) == version.sha256 and whole["Content-Length"] == str(len(data))
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert b"".join(part.streaming_content) == data[10:20]


@pytest.mark.django_db(transaction=True)
def test_agent__downloads_and_resumes_through_the_redirect__and_verifies_the_sha256(
    assigned, bucket, live_server, tmp_path
):
    _, token, url, version = assigned
    whole = bucket.read(version.file.name)
    destination = tmp_path / "cache" / f"{version.sha256}.onnx"
    destination.parent.mkdir()

    def download():
        return download_package(
            Transport(),
            live_server.url + url,
            destination,
            sha256=version.sha256,
            size=version.size_bytes,
            auth_token=token,
            attempts=1,
        )

    def leave_a_part(first_bytes: bytes):
        """Half a download from an earlier try, with the store's ETag the agent kept from it."""
        destination.unlink(missing_ok=True)
        destination.with_name(destination.name + ".part").write_bytes(first_bytes)
        destination.with_name(destination.name + ".part.json").write_text(
            json.dumps({"etag": bucket.etag(version.file.name)})
        )

    assert sha256(download().read_bytes()) == version.sha256

    # The agent asks the console for the rest; Range and If-Range follow the redirect and the store answers them.
    leave_a_part(whole[:100])
    assert download().read_bytes() == whole

    # Proof that only the rest came (206), and that the agent's own check still guards what it installs: a part
    # whose bytes are wrong is completed, found to be other bytes, and thrown away.
    leave_a_part(b"\0" * 100)
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download()
    assert not destination.exists()
