"""Upload handling: stream to a temporary file while hashing, and stop at the size limit.

Models and datasets have separate limits: a dataset is read whole in the web request, a model only outlined
there (jobs.tooling.modelfile.check_upload), so MAX_DATASET_BYTES is the smaller one.
"""

from __future__ import annotations

import contextlib
import hashlib

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler


def _human(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def set_upload_limit(request, setting: str) -> None:
    """Cap the uploads of this request by ``setting`` instead of MAX_UPLOAD_BYTES; call before the body is read.
    A view that takes another kind of file declares its own limit this way (the dataset API does)."""
    getattr(request, "_request", request).upload_limit_setting = setting


def too_large_message(setting: str = "MAX_UPLOAD_BYTES") -> str:
    what = "dataset" if setting == "MAX_DATASET_BYTES" else "upload"
    limit = getattr(settings, setting)
    return f"The file is larger than this console's {what} limit of {_human(limit)} ({setting})."


class HashingUploadHandler(TemporaryFileUploadHandler):
    """Writes every upload to disk (never whole in memory) and hashes it on the way.

    The finished file carries ``sha256``. When the limit is crossed the upload
    is abandoned and ``request.upload_error`` says why; views turn that into 413.
    """

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.hasher = hashlib.sha256()
        self.received = 0
        self.limit_setting = getattr(self.request, "upload_limit_setting", "MAX_UPLOAD_BYTES")
        self.limit = getattr(settings, self.limit_setting)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.file.close()  # TemporaryUploadedFile deletes itself on close
            self.request.upload_error = too_large_message(self.limit_setting)
            raise StopUpload(connection_reset=False)
        self.hasher.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size):
        uploaded = super().file_complete(file_size)
        if uploaded is not None:
            uploaded.sha256 = self.hasher.hexdigest()
        return uploaded


def sha256_of(uploaded) -> str:
    """The hash the handler computed, or computed now in chunks (files handed over by other paths)."""
    known = getattr(uploaded, "sha256", None)
    if known:
        return known
    hasher = hashlib.sha256()
    uploaded.seek(0)
    for chunk in uploaded.chunks():
        hasher.update(chunk)
    uploaded.seek(0)
    return hasher.hexdigest()


@contextlib.contextmanager
def temporary_upload(name: str, payload: bytes):
    """Bytes wrapped as an uploaded file on disk, for uploads that do not come over HTTP (seeding, tests)."""
    upload = TemporaryUploadedFile(name, "application/octet-stream", len(payload), None)
    try:
        upload.write(payload)
        upload.flush()
        upload.seek(0)
        yield upload
    finally:
        upload.close()
