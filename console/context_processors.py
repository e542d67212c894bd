"""Template context every page gets."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from console.health import WorkerStatus


def worker_status(request) -> dict:
    """Which queues have a live worker, for the header's banner and each queued job's note.

    Lazy: a page that never shows it (the sign-in page, an anonymous visitor) never reads the heartbeats.
    """
    return {"worker_status": SimpleLazyObject(WorkerStatus)}
