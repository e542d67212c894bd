"""What an operator needs to know to trust that jobs will run, and the endpoint that says it.

``GET /api/health/`` answers 200 while queued jobs can run and 503 when they cannot: the database or the
broker is unreachable, or a queue holds queued jobs and no worker has been seen on it for
``ALIVE_SECONDS``. A worker missing on an empty queue is a warning only (200, status "degraded"), so a
console whose worker is restarting does not flap. The body names each part:

    {"status": "ok" | "degraded" | "down", "problems": [...],
     "database": {"ok": true}, "broker": {"ok": true, "transport": "sqlalchemy"},
     "queues": {"checks": {"workers": 1, "queued_jobs": 0, "oldest_queued_age_s": null,
                           "broker_messages": 0}, ...}}

Nothing here names hosts or repeats driver errors (the endpoint is public, for load balancers and
monitors); the details go to the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.models import Job
from jobs.registry import ALL_QUEUES, kinds
from jobs.workers.heartbeat import ALIVE_SECONDS, live_workers

logger = logging.getLogger(__name__)

WAITING_FOR_A_WORKER = "waiting for a worker"


def queue_of(kind: str) -> str:
    registered = kinds().get(kind)
    return registered.queue if registered else "default"


def _queued_jobs(now: datetime) -> dict[str, dict]:
    """Queue -> number of queued jobs and the age in seconds of the oldest."""
    per_queue: dict[str, dict] = {}
    rows = Job.objects.filter(state=Job.State.QUEUED).values("kind").annotate(n=Count("id"), oldest=Min("created_at"))
    for row in rows.order_by():
        entry = per_queue.setdefault(queue_of(row["kind"]), {"queued_jobs": 0, "oldest_queued_age_s": None})
        entry["queued_jobs"] += row["n"]
        age = round((now - row["oldest"]).total_seconds(), 1)
        entry["oldest_queued_age_s"] = max(age, entry["oldest_queued_age_s"] or 0.0)
    return per_queue


def _broker_messages(queues: list[str]) -> dict[str, int]:
    """Queue -> messages waiting in the broker; raises when the broker cannot be reached."""
    from console.celery import app

    with app.connection_for_write(connect_timeout=3) as conn:
        conn.ensure_connection(max_retries=1)
        with conn.channel() as channel:
            # Declaring is idempotent (the workers declare the same queues) and answers with the depth.
            return {q: channel.queue_declare(queue=q, durable=True, auto_delete=False).message_count for q in queues}


def _transport_name() -> str:
    from console.celery import app

    return app.connection_for_write().transport.driver_name  # "sqlalchemy", "redis": no connection is made


@dataclass
class Health:
    database_ok: bool
    broker_ok: bool
    queues: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # each one makes jobs unable to run: 503
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "down" if self.problems else "degraded" if self.warnings else "ok"

    @property
    def http_status(self) -> int:
        return 503 if self.problems else 200

    def as_json(self) -> dict:
        return {
            "status": self.status,
            "problems": self.problems + self.warnings,
            "database": {"ok": self.database_ok},
            "broker": {"ok": self.broker_ok, "transport": _transport_name()},
            "workers_alive_within_s": ALIVE_SECONDS,
            "queues": self.queues,
        }


def assess(
    *,
    database_ok: bool,
    broker_ok: bool,
    workers: dict[str, list[str]],
    queued: dict[str, dict],
    broker_messages: dict[str, int],
    eager: bool = False,
) -> Health:
    """Turn the facts into a verdict; pure, so every rule is tested with plain values."""
    health = Health(database_ok=database_ok, broker_ok=broker_ok)
    if not database_ok:
        health.problems.append("the database cannot be reached")
    if not broker_ok and not eager:
        health.problems.append("the broker cannot be reached: no job can be queued or picked up")
    for queue in sorted(set(ALL_QUEUES) | set(queued)):
        waiting = queued.get(queue, {"queued_jobs": 0, "oldest_queued_age_s": None})
        alive = len(workers.get(queue, []))
        health.queues[queue] = {"workers": alive, **waiting, "broker_messages": broker_messages.get(queue)}
        if alive or eager or not database_ok:
            continue
        if waiting["queued_jobs"]:
            health.problems.append(
                f"no worker seen on queue {queue!r} in the last {ALIVE_SECONDS}s, and {waiting['queued_jobs']} "
                f"job(s) wait there (the oldest for {waiting['oldest_queued_age_s']:.0f}s)"
            )
        else:
            health.warnings.append(f"no worker seen on queue {queue!r} in the last {ALIVE_SECONDS}s")
    return health


def check_health(now: datetime | None = None) -> Health:
    now = now or timezone.now()
    eager = bool(settings.CELERY_TASK_ALWAYS_EAGER)
    workers: dict[str, list[str]] = {}
    queued: dict[str, dict] = {}
    try:
        workers, queued = live_workers(now), _queued_jobs(now)
        database_ok = True
    except DatabaseError:
        logger.exception("health: the database cannot be reached")
        database_ok = False
    broker_messages: dict[str, int] = {}
    try:
        broker_messages = {} if eager else _broker_messages(sorted(set(ALL_QUEUES) | set(queued)))
        broker_ok = True
    except Exception:  # any transport's connection error: what matters is that nothing can be queued
        logger.exception("health: the broker cannot be reached")
        broker_ok = False
    return assess(
        database_ok=database_ok,
        broker_ok=broker_ok,
        workers=workers,
        queued=queued,
        broker_messages=broker_messages,
        eager=eager,
    )


class WorkerStatus:
    """Which queues have a live worker, read once per page (the banner and each job's waiting note)."""

    def __init__(self, now: datetime | None = None):
        self.eager = bool(settings.CELERY_TASK_ALWAYS_EAGER)
        self.queues_served = set() if self.eager else set(live_workers(now))

    @property
    def none_alive(self) -> bool:
        return not self.eager and not self.queues_served

    def waiting_note(self, job) -> str:
        """'waiting for a worker' for a queued job that no live worker would pick up, else ''."""
        if self.eager or job.state != Job.State.QUEUED or queue_of(job.kind) in self.queues_served:
            return ""
        return WAITING_FOR_A_WORKER


class HealthView(APIView):
    """Whether queued jobs can run, part by part; 503 when they cannot (see the module docstring)."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []

    @extend_schema(responses={200: dict, 503: dict})
    def get(self, request):
        health = check_health()
        return Response(health.as_json(), status=health.http_status)


class LiveView(APIView):
    """The web process answers: for load balancers (which should not drop a web server because no worker
    runs) and as the trivial baseline of the check-in benchmark."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response({"status": "ok"})
