"""Files of versions as local paths for the tooling, whatever the storage backend."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def local_path(field_file, suffix: str = ".onnx") -> Iterator[Path]:
    """A filesystem path to a stored file: the file itself on local storage, else a temporary copy."""
    storage = field_file.storage
    try:
        path = Path(storage.path(field_file.name))
    except NotImplementedError:  # object storage: copy down
        path = None
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="mdc-") as tmp:
        target = Path(tmp) / f"model{suffix}"
        with storage.open(field_file.name, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        yield target
