"""A real S3-compatible HTTP server (moto's, on 127.0.0.1) and the console's storage pointed at a fresh bucket."""

from __future__ import annotations

import runpy
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "console" / "settings.py"
CREDENTIALS = {"aws_access_key_id": "test-key", "aws_secret_access_key": "test-secret", "region_name": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: a free one
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class Bucket:
    """What is in the bucket, read over HTTP with boto3 (not through the console's storage)."""

    def __init__(self, endpoint: str, name: str):
        self.name = name
        self.client = boto3.client("s3", endpoint_url=endpoint, **CREDENTIALS)
        self.client.create_bucket(Bucket=name)

    def keys(self) -> list[str]:
        return sorted(item["Key"] for item in self.client.list_objects_v2(Bucket=self.name).get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def etag(self, key: str) -> str:
        return self.client.head_object(Bucket=self.name, Key=key)["ETag"]


@pytest.fixture
def bucket(settings, monkeypatch, s3_endpoint) -> Bucket:
    """The console's default storage on a new, empty bucket, configured as an operator would: the environment
    variables of docs/operations.md, read by console/settings.py (credentials through boto3's own chain)."""
    bucket = Bucket(s3_endpoint, f"models-{uuid.uuid4().hex[:12]}")
    for name, value in {
        "AWS_STORAGE_BUCKET_NAME": bucket.name,
        "AWS_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_S3_REGION_NAME": CREDENTIALS["region_name"],
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
    }.items():
        monkeypatch.setenv(name, value)
    configured = runpy.run_path(str(SETTINGS_FILE))
    settings.STORAGES = configured["STORAGES"]
    settings.STORAGE_DOWNLOADS = configured["STORAGE_DOWNLOADS"]
    return bucket


@pytest.fixture(autouse=True)
def fresh_delivery_caches():
    """Delivery plans and last-seen notes are kept per process: start every test from scratch."""
    from devices.delivery import cache as plans
    from devices.delivery import presence

    plans.clear_cache()
    presence.forget()
    yield
    plans.clear_cache()
    presence.forget()
