"""Worker heartbeats: a thread in each Celery worker's main process writes one row per queue it consumes
(and, on the server-less broker, prunes the messages consumers took long ago).

The thread starts when the worker is ready (consuming) and its rows are deleted when the worker shuts down
cleanly; a worker that dies without warning simply stops being seen, and is taken for dead after
``ALIVE_SECONDS``. Celery's own ways of knowing (remote-control ping, worker events) need a broadcast
exchange, which the server-less broker (kombu's SQLAlchemy transport) does not have.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timedelta

from celery.signals import worker_ready, worker_shutting_down
from django.db import DatabaseError, connection
from django.utils import timezone

from .broker import prune_delivered
from .models import WorkerHeartbeat

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15
ALIVE_SECONDS = 60  # four missed beats: dead, not merely busy writing
FORGET_AFTER = timedelta(days=1)


def beat(*, worker: str, queues: list[str], pid: int, started_at: datetime, now: datetime | None = None) -> None:
    """Record that ``worker`` consumes ``queues`` as of ``now``; rows of workers gone for a day are dropped."""
    now = now or timezone.now()
    WorkerHeartbeat.objects.bulk_create(
        [WorkerHeartbeat(worker=worker, queue=queue, pid=pid, started_at=started_at, seen_at=now) for queue in queues],
        update_conflicts=True,
        unique_fields=["worker", "queue"],
        update_fields=["pid", "started_at", "seen_at"],
    )
    WorkerHeartbeat.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()


def forget(worker: str) -> None:
    WorkerHeartbeat.objects.filter(worker=worker).delete()


def live_workers(now: datetime | None = None) -> dict[str, list[str]]:
    """Queue -> names of the workers seen on it in the last ``ALIVE_SECONDS``."""
    now = now or timezone.now()
    alive: dict[str, list[str]] = {}
    rows = WorkerHeartbeat.objects.filter(seen_at__gte=now - timedelta(seconds=ALIVE_SECONDS))
    for queue, worker in rows.order_by("queue", "worker").values_list("queue", "worker"):
        alive.setdefault(queue, []).append(worker)
    return alive


class _HeartbeatThread(threading.Thread):
    def __init__(self, app, worker: str, queues: list[str]):
        super().__init__(name="worker-heartbeat", daemon=True)
        self.app, self.worker, self.queues = app, worker, queues
        self.started_at = timezone.now()
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                beat(worker=self.worker, queues=self.queues, pid=os.getpid(), started_at=self.started_at)
            except DatabaseError as exc:  # the database blinked: say so, and try again at the next beat
                logger.warning("worker heartbeat for %s failed: %s", self.worker, exc)
            finally:
                connection.close()  # hold no connection (nor a SQLite lock) between beats
            try:
                prune_delivered(self.app)
            except Exception as exc:  # the broker's own errors differ by transport; the next beat tries again
                logger.warning("pruning delivered broker messages failed: %s", exc)
            if self.stopped.wait(HEARTBEAT_SECONDS):
                return


_thread: _HeartbeatThread | None = None


@worker_ready.connect
def _start_heartbeat(sender=None, **kwargs) -> None:
    global _thread
    queues = sorted(sender.app.amqp.queues.consume_from)
    _thread = _HeartbeatThread(sender.app, sender.hostname, queues)
    _thread.start()
    logger.info("worker %s: heartbeat every %ss on %s", sender.hostname, HEARTBEAT_SECONDS, ", ".join(queues))


@worker_shutting_down.connect
def _stop_heartbeat(sender=None, **kwargs) -> None:
    if _thread is None:
        return
    _thread.stopped.set()
    _thread.join(timeout=5)
    try:
        forget(_thread.worker)
    except DatabaseError as exc:
        logger.warning("could not clear the heartbeat of %s: %s", _thread.worker, exc)
    finally:
        connection.close()
