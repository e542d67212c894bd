"""Last-seen times, written behind: a check-in notes the time, and each web process writes its notes at most
``DEVICE_LAST_SEEN_FLUSH_S`` seconds later from a timer thread (never inside a check-in, which would wait
for it) and when it exits.

So no check-in waits for a write, whatever the fleet size (the writes are batched); the price is that
``last_seen_at`` lags by up to the flush interval and a killed process loses its last few seconds of notes.
A check-in answered from its ticket (devices.core.tickets) does not read the device row, so the process also
remembers when it last noted each device, to note it at most once per ``DEVICE_LAST_SEEN_RESOLUTION_S``
(default 60 s) itself.
"""

from __future__ import annotations

import atexit
import threading
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import Q

from devices import conf
from devices.models import Device

_lock = threading.Lock()
_pending: dict[int, datetime] = {}
_noted: dict[int, float] = {}  # device pk -> when this process last noted it (POSIX seconds)
_MAX_NOTED = 100_000  # ~10 MB; forgetting early only means noting a device again
_BATCH = 500


def note_seen(device_pk: int, now: datetime, last_seen_at: datetime | None = None) -> None:
    """Remember that the device checked in at ``now``, unless its stored time (``last_seen_at``, when the
    caller read the row) or this process's last note of it is recent enough already."""
    resolution = conf.last_seen_resolution_s()
    if last_seen_at is not None and now - last_seen_at < timedelta(seconds=resolution):
        return
    noted = _noted.get(device_pk)
    if noted is not None and 0 <= now.timestamp() - noted < resolution:
        return
    delay = conf.last_seen_flush_s()
    with _lock:
        if len(_noted) >= _MAX_NOTED:
            _noted.clear()
        _noted[device_pk] = now.timestamp()
        start_timer = not _pending and delay > 0
        _pending[device_pk] = now
    if delay <= 0:
        _flush_quietly()
    elif start_timer:  # never in the request: a flush of many devices would hold up this check-in
        timer = threading.Timer(delay, _flush_in_background)
        timer.daemon = True
        timer.start()


def forget() -> None:
    """Drop this process's pending and remembered notes (tests start from scratch)."""
    with _lock:
        _pending.clear()
        _noted.clear()


def _flush_quietly() -> None:
    """``flush``, for callers that must not fail because of it (a check-in, a timer)."""
    try:
        flush()
    except DatabaseError:
        pass  # these notes are lost; each device is noted again after the resolution


def _flush_in_background() -> None:
    try:
        _flush_quietly()
    finally:
        connection.close()  # this thread's own connection


def flush() -> int:
    """Write every pending note; returns how many devices were updated.

    In primary-key order and one transaction per batch, so web processes flushing overlapping devices at the
    same moment take the row locks in the same order and hold few at a time (no deadlocks)."""
    with _lock:
        pending = sorted(_pending.items())
        _pending.clear()
    for start in range(0, len(pending), _BATCH):
        _write(pending[start : start + _BATCH])
    return len(pending)


def _write(batch: list[tuple[int, datetime]]) -> None:
    if connection.vendor != "postgresql":  # the zero-setup SQLite console: small fleets, a statement each
        with transaction.atomic():
            for pk, seen in batch:
                Device.objects.filter(Q(last_seen_at=None) | Q(last_seen_at__lt=seen), pk=pk).update(last_seen_at=seen)
        return
    # By hand, one statement over two arrays: Django's bulk_update compiles a CASE branch per row in Python,
    # which held the web process (and so its check-ins) for tens of milliseconds per batch. GREATEST keeps
    # the latest time when two processes noted the same device.
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "{Device._meta.db_table}" AS d SET "last_seen_at" = GREATEST(d."last_seen_at", v.seen) '
            'FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, seen) WHERE d."id" = v.id',
            [[pk for pk, _ in batch], [seen for _, seen in batch]],
        )


def _flush_at_exit() -> None:
    try:
        flush()
    except DatabaseError:
        pass  # the database is gone already; a few seconds of last-seen times are lost


atexit.register(_flush_at_exit)
