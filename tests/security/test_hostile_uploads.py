"""The hostile-upload corpus: each file is posted through the real API and refused with a message, in bounded
time and memory, leaving no stored file, no upload temporary, and no version, dataset or job behind.

The files are built here (tests/security/hostile_files.py): small on disk, big once decompressed or declared.
The multipart bodies are written by hand so a filename can carry ``../`` and NUL, which Django's test client
would strip before sending.

Memory is the request's own: the process's peak resident size (VmHWM) is reset just before the request and read
just after, so everything the request touches counts (protobuf and zlib allocate outside Python's allocator,
where tracemalloc does not look). The body is built before the reset, so the client's copies are not counted.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from django.test.client import FakePayload

from console.models import Dataset, ModelVersion
from jobs.models import Job
from tests.conftest import api_client_for, make_mlp, stored_files
from tests.jobs.helpers import ready_version
from tests.security import hostile_files

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures peak memory through Linux /proc"),
]

BOUNDARY = "hostile-upload-5d1c0a2f9e"
MAX_REQUEST_GROWTH_MB = 48  # what any refusal may add to the web process's peak memory
MAX_REQUEST_SECONDS = 5


def _status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def multipart(payload: bytes, filename: bytes = b"upload.bin", **fields: str) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
        + filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + payload
        + b"\r\n"
    )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


class Posted:
    def __init__(self, response, seconds: float, growth_mb: float):
        self.status = response.status_code
        self.body = response.json()
        self.text = " ".join([str(self.body.get("detail", "")), *self.body.get("problems", [])])
        self.seconds = seconds
        self.growth_mb = growth_mb


def post(user, url: str, body: bytes) -> Posted:
    client = api_client_for(user)
    # The request's environ is built first: the test client copies the body into its fake socket, which a real
    # server does not do, and that copy must not count against the request.
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": url,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}",
        "wsgi.input": FakePayload(body),
    }
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from the current size
    before = _status_kb("VmRSS")
    started = time.perf_counter()
    response = client.request(**environ)
    seconds = time.perf_counter() - started
    return Posted(response, seconds, (_status_kb("VmHWM") - before) / 1024)


@pytest.fixture
def upload_temp_dir(settings, tmp_path) -> Path:
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-tmp")
    Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir()
    return Path(settings.FILE_UPLOAD_TEMP_DIR)


def leftovers(storage: Path, temp: Path) -> dict:
    return {
        "stored files": sorted(stored_files(storage)),
        "upload temporaries": sorted(temp.iterdir()),
        "versions": ModelVersion.objects.count(),
        "datasets": Dataset.objects.count(),
        "jobs": Job.objects.count(),
    }


@pytest.fixture
def refused(isolated_storage, upload_temp_dir):
    """Post and assert the refusal left the storage, the temporaries and the tables as they were."""

    def check(user, url: str, body: bytes, status: int, message: str) -> Posted:
        before = leftovers(isolated_storage, upload_temp_dir)
        posted = post(user, url, body)
        assert posted.status == status, posted.body
        assert message in posted.text, posted.body
        assert posted.seconds < MAX_REQUEST_SECONDS
        assert posted.growth_mb < MAX_REQUEST_GROWTH_MB, f"the request's peak memory grew {posted.growth_mb:.0f} MB"
        assert leftovers(isolated_storage, upload_temp_dir) == before
        # shown with -s: the figures of a run
        print(f"hostile upload refused: {posted.status}, {posted.seconds:.2f} s, peak +{posted.growth_mb:.1f} MB")
        return posted

    return check


def versions_url(project, model) -> str:
    return f"/api/projects/{project.slug}/models/{model.name}/versions/"


def datasets_url(project, model) -> str:
    return f"/api/projects/{project.slug}/models/{model.name}/datasets/"


# --- models --------------------------------------------------------------------------------------

MODEL_CASES = {
    "not-onnx": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "not a readable ONNX model"),
    "empty": (b"", "The file is empty"),
    "truncated": (make_mlp(hidden=64).SerializeToString()[:1500], "not a readable ONNX model"),
    "random-bytes": (np.random.default_rng(9).bytes(4096), "not a readable ONNX model"),
    "random-protobuf": (hostile_files.random_protobuf(), "not a readable ONNX model"),
    "huge-declared-tensor": (hostile_files.huge_declared_tensor(), "declares shape [1048576, 1048576]"),
    "raw-data-size-mismatch": (hostile_files.raw_data_size_mismatch(), "stores 100 bytes, where 128 are needed"),
    "nested-subgraphs": (hostile_files.nested_subgraphs(40), "nests subgraphs more than 16 deep"),
    "100k-nodes": (hostile_files.many_nodes(100_000), "more than 50,000 nodes"),
    "external-data-traversal": (hostile_files.external_data("../../../etc/passwd"), "outside the model's folder"),
    "external-data": (hostile_files.external_data("weights.bin"), "Upload a self-contained model"),
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_model_upload__hostile_file__is_refused_and_leaves_nothing(project, model, teammate, refused, case):
    payload, message = MODEL_CASES[case]
    refused(teammate, versions_url(project, model), multipart(payload), 400, message)


def test_model_upload__over_the_limit__is_413_and_leaves_nothing(project, model, teammate, settings, refused):
    settings.MAX_UPLOAD_BYTES = 1024 * 1024
    refused(
        teammate,
        versions_url(project, model),
        multipart(hostile_files.valid_model_of(2)),
        413,
        "upload limit of 1 MB (MAX_UPLOAD_BYTES)",
    )


@pytest.mark.parametrize(
    "filename", [b"../../../escaped.onnx", b"..\\..\\escaped.onnx", b"escaped\x00.onnx", b"/tmp/escaped.onnx"]
)
def test_model_upload__hostile_filename_with_a_bad_file__is_refused_and_writes_nowhere(
    project, model, teammate, refused, tmp_path, filename
):
    refused(
        teammate,
        versions_url(project, model),
        multipart(b"not a model at all", filename=filename),
        400,
        "not a readable ONNX model",
    )
    assert not list(tmp_path.parent.rglob("escaped*"))
    assert not Path("/tmp/escaped.onnx").exists()


def test_model_upload__filename_of_only_dots__is_not_taken_as_a_file(project, model, teammate, refused):
    posted = refused(
        teammate, versions_url(project, model), multipart(make_mlp().SerializeToString(), filename=b".."), 400, ""
    )
    assert "Attach the model" in str(posted.body)


def test_model_upload__hostile_filename_on_a_good_model__is_stored_under_its_hash_with_the_base_name(
    project, model, teammate, isolated_storage, upload_temp_dir, tmp_path
):
    # Django keeps only the base name of an upload, without control characters; the file is stored under its
    # content hash inside the storage root, so the name never becomes a path.
    posted = post(
        teammate,
        versions_url(project, model),
        multipart(make_mlp().SerializeToString(), filename=b"../../evil\x00name.onnx"),
    )
    assert posted.status == 201, posted.body
    version = ModelVersion.objects.get()
    assert version.original_filename == "evilname.onnx"
    [stored] = stored_files(isolated_storage)
    assert stored.name == f"{version.sha256}.onnx" and isolated_storage in stored.parents
    assert not list(tmp_path.parent.rglob("evil*"))
    assert list(upload_temp_dir.iterdir()) == []


def test_model_upload__large_valid_model__is_accepted_without_parsing_it_in_the_request(
    project, model, teammate, upload_temp_dir
):
    payload = hostile_files.valid_model_of(48)  # parsed and checked in full, this costs about 3x its size
    posted = post(teammate, versions_url(project, model), multipart(payload))
    assert posted.status == 201, posted.body
    assert posted.growth_mb < 24, f"the request's peak memory grew {posted.growth_mb:.0f} MB for a 48 MB model"
    assert Job.objects.get().kind == "check"  # the check job parses it, runs the checker and fails it if it must


# --- datasets ------------------------------------------------------------------------------------


@pytest.fixture
def checked(model):
    return ready_version(model)


DATASET_CASES = {
    "npz-bomb": (
        hostile_files.npz_bomb(),
        "data.npz",
        "unpacks to 2,147,483,648 bytes (2,048.0 MB) from 2.0 MB; a dataset may unpack to at most 256.0 MB",
    ),
    "npz-declaring-more-than-it-holds": (
        hostile_files.npz_declaring((1 << 40, 8)),
        "data.npz",
        "declares shape (1099511627776, 8) of float32",
    ),
    "npz-with-pickles": (hostile_files.npz_pickled(), "data.npz", "would need unpickling"),
    "npz-of-many-entries": (hostile_files.npz_with_entries(5000), "data.npz", "a dataset has at most 1,024 arrays"),
    "npz-truncated": (
        hostile_files.npz_bytes(x=np.ones((64, 8), np.float32))[:900],
        "data.npz",
        "not a readable NPZ archive",
    ),
    "csv-million-columns": (
        hostile_files.csv_with_columns(1_000_000),
        "data.csv",
        "the CSV header names more than 10,000 columns",
    ),
    "not-a-csv": (bytes(range(128, 256)) * 64, "data.csv", "not a readable CSV file"),
}


@pytest.mark.parametrize("case", DATASET_CASES)
def test_dataset_upload__hostile_file__is_refused_and_leaves_nothing(project, model, checked, teammate, refused, case):
    payload, filename, message = DATASET_CASES[case]
    refused(teammate, datasets_url(project, model), multipart(payload, filename=filename.encode()), 400, message)


def test_dataset_upload__csv_over_the_value_limit__is_refused_from_its_line_count(
    project, model, checked, teammate, settings, refused
):
    settings.MAX_DATASET_ELEMENTS = 10_000
    header = ",".join(f"f{i}" for i in range(8)) + ",label\n"
    refused(
        teammate,
        datasets_url(project, model),
        multipart((header + "0.5,1,2,3,4,5,6,7,1\n" * 2000).encode(), filename=b"data.csv"),
        400,
        "the CSV has 2,000 lines of 9 columns (18,000 values)",
    )


def test_dataset_upload__over_the_dataset_limit__is_413_below_the_model_limit(
    project, model, checked, teammate, settings, refused
):
    settings.MAX_DATASET_BYTES = 64 * 1024
    header = ",".join(f"f{i}" for i in range(8)) + ",label\n"
    refused(
        teammate,
        datasets_url(project, model),
        multipart((header + "0.5,1,2,3,4,5,6,7,1\n" * 5000).encode(), filename=b"data.csv"),
        413,
        "dataset limit of 65536 bytes (MAX_DATASET_BYTES)",
    )
