"""Celery tasks: thin wrappers that load a job, call its handler, and save the outcome."""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from . import services
from .models import Job
from .registry import JobCancelled, PermanentJobError, get_kind

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
HEARTBEAT_SECONDS = 20


class _Heartbeat(threading.Thread):
    """Keeps heartbeat_at fresh while a handler works through one long step."""

    def __init__(self, job_id: int):
        super().__init__(daemon=True)
        self.job_id = job_id
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(HEARTBEAT_SECONDS):
                try:
                    services.touch_job(self.job_id)
                except TRANSIENT_ERRORS:
                    logger.warning("heartbeat for job %s failed; will try again", self.job_id)
        finally:
            connection.close()


def _progress_reporter(job_id: int):
    def progress(percent: int, message: str = "") -> None:
        services.report_progress(job_id, percent, message)
        if Job.objects.filter(pk=job_id, state=Job.State.CANCELLED).exists():
            raise JobCancelled()

    return progress


def execute_job(job_id: int) -> str:
    """Claim and run one job in this process. Returns what happened, for logs and tests."""
    if not services.claim_job(job_id):
        return "skipped"  # already done, taken by another worker, cancelled or gone
    job = Job.objects.select_related("project", "input_version").get(pk=job_id)
    kind = get_kind(job.kind)
    heartbeat = _Heartbeat(job_id)
    heartbeat.start()
    try:
        result, output_version = kind.run(job, _progress_reporter(job_id))
    except JobCancelled:
        return "cancelled"
    except TRANSIENT_ERRORS:
        close_old_connections()
        raise
    except PermanentJobError as exc:
        services.fail_job(job_id, str(exc))
        return "failed"
    except Exception as exc:
        logger.exception("job %s (%s) crashed", job_id, job.kind)
        services.fail_job(job_id, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        heartbeat.stopped.set()
    services.finish_job(job_id, result=result, output_version=output_version)
    return "succeeded"


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5)
def run_job(self, *, job_id: int) -> str:
    try:
        return execute_job(job_id)
    except TRANSIENT_ERRORS as exc:
        # The database blinked: hand the job back and try again with backoff.
        try:
            services.requeue_job(job_id, f"transient error: {exc}")
        except TRANSIENT_ERRORS:
            pass  # the reaper will requeue it once its heartbeat goes stale
        raise self.retry(exc=exc, countdown=min(60, 2 ** (self.request.retries + 1))) from exc


@shared_task(acks_late=True)
def reap_stale_jobs() -> dict:
    return services.reap_stale_jobs()
