"""Files of versions as local paths for the tooling, whatever the storage backend."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def is_local(storage) -> bool:
    """True when ``storage`` keeps files on this machine's filesystem (Django's way to tell: ``path()``)."""
    try:
        storage.path("probe")
    except NotImplementedError:
        return False
    return True


@contextlib.contextmanager
def local_path(field_file, suffix: str = ".onnx") -> Iterator[Path]:
    """A filesystem path to a stored file: the file itself on local storage, else a temporary copy.

    The copy lives in a private temporary folder that is removed when the block ends, whether it
    raised or not, so a job on object storage leaves nothing behind on the worker.
    """
    storage = field_file.storage
    if is_local(storage):
        yield Path(storage.path(field_file.name))
        return
    with tempfile.TemporaryDirectory(prefix="mdc-") as tmp:
        target = Path(tmp) / f"model{suffix}"
        with storage.open(field_file.name, "rb") as src, open(target, "wb") as dst:
            s3_object = getattr(src, "obj", None)
            if s3_object is not None:
                # django-storages' S3File would first read the whole object into a buffer; boto3 streams it
                # to disk in parts instead.
                s3_object.download_fileobj(dst)
            else:
                shutil.copyfileobj(src, dst, 1024 * 1024)
        yield target
