"""Private, crash-safe files in the agent's state dir.

Everything the agent writes is readable by its own user only (files 0600,
directories 0700): the state holds the device token. Whole-file writes go
through a temp file, fsync and rename, so a power cut leaves either the old
or the new file, never half of one.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_private_dir(path: Path) -> Path:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)  # mkdir's mode is masked by the umask and ignored for existing dirs
    return path


def open_private(path: Path, flags: int) -> int:
    """``os.open`` creating the file 0600 whatever the umask; returns the descriptor."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_private_bytes(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (temp file in the same dir, fsync, rename, fsync dir)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_private_json(path: Path, value: Any) -> None:
    write_private_bytes(path, json.dumps(value, indent=1, sort_keys=True).encode())


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` when the file does not exist."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return default
