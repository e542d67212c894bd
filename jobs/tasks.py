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


class _Heartbeat(threading.Thread):
    """Keeps heartbeat_at fresh while a handler works through one long step."""

    def __init__(self, job_id: int):
        super().__init__(daemon=True)
        self.job_id = job_id
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(services.HEARTBEAT_SECONDS):
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
    """Claim and run one job in this process. Returns what happened, for logs and tests.

    A transient error is raised again only when the job went back to its queue for another attempt, so that
    ``run_job``'s retry sends it; out of attempts, the job fails with the error instead.
    """
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
    except TRANSIENT_ERRORS as exc:
        close_old_connections()
        if services.release_for_retry(job_id, f"{type(exc).__name__}: {exc}".strip()):
            raise
        return "failed"
    except PermanentJobError as exc:
        services.fail_job(job_id, str(exc))
        return "failed"
    except Exception as exc:
        logger.exception("job %s (%s) crashed", job_id, job.kind)
        services.fail_job(job_id, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        heartbeat.stopped.set()
    if not services.finish_job(job_id, result=result, output_version=output_version):
        return "cancelled"  # cancelled (or given up by the reaper) while it ran: its result is not saved
    return "succeeded"


# Transient errors (the database or the network blinked) are retried by Celery alone, with backoff: one message
# per failure. The job row caps the attempts (JOB_MAX_ATTEMPTS, in claim_job and release_for_retry);
# max_retries bounds a chain that keeps failing before it even claims the job (the database is down), after
# which the reaper, not this chain, picks the job up again.
@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
)
def run_job(*, job_id: int) -> str:
    return execute_job(job_id)


@shared_task(acks_late=True)
def reap_stale_jobs() -> dict:
    return services.reap_stale_jobs()
