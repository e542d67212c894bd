"""The agent's model store: package files cached by sha256, and what is installed per model.

``cache/<sha256>.onnx`` holds verified package files, named by content, so a
version assigned again (a rollback, an app upgrade that lands on the same
version, the same bytes under a new version id) is installed from disk.
``installed.json`` holds, per model, the ``current`` and ``previous`` install
records (the previous one is the rollback target), the shas it will not
retry yet (``blocked``, after a failed verification or install) and the last
retry generation the server asked for (``retry``, which clears ``blocked``).
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from devices.agent.download import file_sha256
from devices.agent.storage import ensure_private_dir, read_json, write_private_json

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_BLOCK_S = 24 * 3600
STALE_PART_S = 7 * 24 * 3600


class ModelStore:
    def __init__(self, root: Path, *, keep_unused: int = 4) -> None:
        self.cache_dir = ensure_private_dir(root / "cache")
        self.installed_path = root / "installed.json"
        self.keep_unused = keep_unused
        self._lock = threading.RLock()

    # -- cache

    def blob_path(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.cache_dir / f"{sha256}.onnx"

    def cached(self, sha256: str) -> Path | None:
        """The cached file for ``sha256`` after re-hashing it (a file damaged on disk is dropped)."""
        path = self.blob_path(sha256)
        if not path.exists():
            return None
        if file_sha256(path) != sha256:
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # most recently used, for pruning
        return path

    def prune(self) -> list[str]:
        """Drop cached files no install refers to, beyond the ``keep_unused`` most recently used; stale parts too."""
        with self._lock:
            referenced = {
                record["sha256"]
                for entry in self.entries().values()
                for record in (entry.get("current"), entry.get("previous"))
                if record
            }
        unused = sorted(
            (path for path in self.cache_dir.glob("*.onnx") if path.stem not in referenced),
            key=lambda path: path.stat().st_mtime,
            reverse=True,
        )
        removed = []
        for path in unused[self.keep_unused :]:
            path.unlink(missing_ok=True)
            removed.append(path.stem)
        now = time.time()
        for part in self.cache_dir.glob("*.onnx.part"):
            if now - part.stat().st_mtime > STALE_PART_S:
                part.unlink(missing_ok=True)
                part.with_name(part.name + ".json").unlink(missing_ok=True)
        return removed

    # -- installs

    def entries(self) -> dict[str, dict[str, Any]]:
        return (read_json(self.installed_path, {}) or {}).get("models", {})

    def entry(self, model: str) -> dict[str, Any]:
        return self.entries().get(model) or {"current": None, "previous": None, "blocked": {}}

    def current(self, model: str) -> dict[str, Any] | None:
        return self.entry(model).get("current")

    def install(self, model: str, record: dict[str, Any]) -> dict[str, Any] | None:
        """Make ``record`` current; the replaced install becomes the rollback target. Returns it."""
        with self._lock:
            entries = self.entries()
            entry = entries.get(model) or {"current": None, "previous": None, "blocked": {}}
            replaced = entry.get("current")
            if replaced and replaced.get("state") == "running" and replaced["sha256"] != record["sha256"]:
                entry["previous"] = replaced
            entry["current"] = record
            entry.setdefault("blocked", {}).pop(record["sha256"], None)
            entries[model] = entry
            self._save(entries)
            return replaced

    def rollback(
        self, model: str, *, only_sha256: str | None = None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Put the previous install back; returns (abandoned, restored). Without a previous one the current
        install stays, marked ``failed``, and restored is None.

        Nothing changes, and the answer is (None, current), when the current install already failed or,
        with ``only_sha256``, is another file: two threads failing on the same file must not roll back twice.
        """
        with self._lock:
            entries = self.entries()
            entry = entries.get(model)
            if not entry or not entry.get("current"):
                return None, None
            current = entry["current"]
            if current.get("state") != "running" or (only_sha256 is not None and current["sha256"] != only_sha256):
                return None, current
            abandoned = dict(entry["current"], state="failed")
            restored = entry.get("previous")
            entry["current"] = restored or abandoned
            entry["previous"] = None
            self._save(entries)
            return abandoned, restored

    def block(self, model: str, sha256: str, reason: str, *, base_delay_s: float, now: float) -> float:
        """Do not retry ``sha256`` for a while (doubling per failure, at most a day); returns the delay."""
        with self._lock:
            entries = self.entries()
            entry = entries.setdefault(model, {"current": None, "previous": None, "blocked": {}})
            blocked = entry.setdefault("blocked", {})
            attempts = int((blocked.get(sha256) or {}).get("attempts", 0)) + 1
            delay = min(base_delay_s * 2 ** (attempts - 1), MAX_BLOCK_S)
            blocked[sha256] = {"attempts": attempts, "until": now + delay, "reason": reason}
            self._save(entries)
            return delay

    def accept_retry(self, model: str, generation: int) -> bool:
        """Forget the back-off of ``model``'s failed versions once per retry ``generation`` the server names
        (a rollout's retry of failed devices); True when this generation is new."""
        with self._lock:
            entries = self.entries()
            entry = entries.setdefault(model, {"current": None, "previous": None, "blocked": {}})
            if entry.get("retry") == generation:
                return False
            entry["retry"] = generation
            entry["blocked"] = {}
            self._save(entries)
            return True

    def blocked_reason(self, model: str, sha256: str, *, now: float) -> str | None:
        block = (self.entry(model).get("blocked") or {}).get(sha256)
        if block and block["until"] > now:
            return block["reason"]
        return None

    def _save(self, entries: dict[str, Any]) -> None:
        write_private_json(self.installed_path, {"models": entries})
