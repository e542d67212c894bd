"""Events waiting to be reported, kept on disk until the server acknowledges them.

Each event gets its uuid4 ``id`` when it is recorded, and keeps it through
every retry: the server counts an id once, so a batch resent after a lost
answer is not counted twice. The outbox is bounded; past ``max_pending`` the
oldest events are dropped (and the count of dropped events is kept).
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devices.agent.storage import read_json, write_private_json

EVENT_TYPES = (
    "download_started",
    "download_completed",
    "download_failed",
    "install_succeeded",
    "install_failed",
    "rollback",
    "inference_stats",
    "feedback",
)


def utc_now_iso() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventOutbox:
    def __init__(self, path: Path, *, max_pending: int = 5000) -> None:
        self.path = path
        self.max_pending = max_pending
        self._lock = threading.RLock()

    def add(
        self,
        event_type: str,
        *,
        model: str,
        version_id: Any,
        reason: str | None = None,
        stats: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        event: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "type": event_type,
            "model": model,
            "version_id": version_id,
            "at": utc_now_iso(),
        }
        if reason is not None:
            event["reason"] = reason
        if stats is not None:
            event["stats"] = stats
        with self._lock:
            data = self._load()
            data["pending"].append(event)
            overflow = len(data["pending"]) - self.max_pending
            if overflow > 0:
                del data["pending"][:overflow]
                data["dropped"] = data.get("dropped", 0) + overflow
            self._save(data)
        return event

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._load()["pending"])

    def next_batch(self, size: int) -> list[dict[str, Any]]:
        """The oldest ``size`` pending events, unchanged (same ids) however often they are sent."""
        return self.pending()[:size]

    def acknowledge(self, event_ids: list[str]) -> None:
        done = set(event_ids)
        with self._lock:
            data = self._load()
            data["pending"] = [event for event in data["pending"] if event["id"] not in done]
            self._save(data)

    def dropped(self) -> int:
        return int(self._load().get("dropped", 0))

    def _load(self) -> dict[str, Any]:
        data = read_json(self.path, None) or {}
        data.setdefault("pending", [])
        return data

    def _save(self, data: dict[str, Any]) -> None:
        write_private_json(self.path, data)
