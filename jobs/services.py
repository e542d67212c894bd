"""State changes of jobs. Every transition of Job.state happens here."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from .models import Job
from .registry import get_kind

logger = logging.getLogger(__name__)


def _now_line(message: str) -> str:
    return f"[{timezone.now():%H:%M:%S}] {message}\n"


def start_job(*, project, kind: str, params: dict | None = None, input_version=None, user=None) -> Job:
    """Create a queued job and send it to its queue once the transaction commits."""
    job_kind = get_kind(kind)
    job = Job.objects.create(
        project=project,
        kind=kind,
        params=params or {},
        input_version=input_version,
        created_by=user if user is not None and user.is_authenticated else None,
        log=_now_line(f"queued on {job_kind.queue}"),
    )
    transaction.on_commit(lambda: enqueue(job.pk, job_kind.queue))
    return job


def enqueue(job_id: int, queue: str) -> None:
    from .tasks import run_job  # tasks import services; import here to keep the cycle out of module load

    run_job.apply_async(kwargs={"job_id": job_id}, queue=queue)


def claim_job(job_id: int) -> bool:
    """Atomically move a queued job to running; False if someone else has it or it is gone."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, state=Job.State.QUEUED).update(
        state=Job.State.RUNNING,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        log=Concat(F("log"), Value(_now_line("started"))),
    )
    return claimed == 1


def report_progress(job_id: int, progress: int, message: str = "") -> None:
    fields: dict = {"progress": max(0, min(100, int(progress))), "heartbeat_at": timezone.now()}
    if message:
        fields["log"] = Concat(F("log"), Value(_now_line(message)))
    Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(**fields)


def touch_job(job_id: int) -> None:
    Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(heartbeat_at=timezone.now())


def finish_job(job_id: int, *, result: dict | None = None, output_version=None, message: str = "done") -> bool:
    return (
        Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(
            state=Job.State.SUCCEEDED,
            progress=100,
            result=result or {},
            output_version=output_version,
            finished_at=timezone.now(),
            log=Concat(F("log"), Value(_now_line(message))),
        )
        == 1
    )


def fail_job(job_id: int, reason: str) -> bool:
    """Mark a queued or running job failed with its reason, and let its kind clean up."""
    reason = reason.strip() or "failed without a message"
    changed = Job.objects.filter(pk=job_id, state__in=[Job.State.QUEUED, Job.State.RUNNING]).update(
        state=Job.State.FAILED,
        error=reason[:5000],
        finished_at=timezone.now(),
        log=Concat(F("log"), Value(_now_line(f"failed: {reason[:500]}"))),
    )
    if changed:
        job = Job.objects.get(pk=job_id)
        get_kind(job.kind).on_failure(job, reason)
    return changed == 1


def requeue_job(job_id: int, reason: str) -> bool:
    changed = Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(
        state=Job.State.QUEUED, log=Concat(F("log"), Value(_now_line(f"requeued: {reason}")))
    )
    if changed:
        job = Job.objects.get(pk=job_id)
        transaction.on_commit(lambda: enqueue(job.pk, get_kind(job.kind).queue))
    return changed == 1


def cancel_job(job: Job) -> bool:
    """Cancel a job that has not finished. A running handler notices at its next progress report."""
    changed = Job.objects.filter(pk=job.pk, state__in=[Job.State.QUEUED, Job.State.RUNNING]).update(
        state=Job.State.CANCELLED, finished_at=timezone.now(), log=Concat(F("log"), Value(_now_line("cancelled")))
    )
    if changed:
        get_kind(job.kind).on_failure(job, "cancelled")
    return changed == 1


def reap_stale_jobs(*, now=None) -> dict:
    """Running jobs whose worker went silent are retried, or failed once out of attempts.

    Queued jobs that sat unclaimed for as long are sent again (a lost broker
    message); a duplicate message is harmless because claiming is atomic.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.JOB_STALE_SECONDS)
    requeued = failed = resent = 0
    stale = Job.objects.filter(state=Job.State.RUNNING).filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at=None))
    for job in stale:
        with transaction.atomic():
            if job.attempts >= settings.JOB_MAX_ATTEMPTS:
                failed += fail_job(job.pk, f"the worker running this job stopped responding {job.attempts} time(s)")
            else:
                requeued += requeue_job(job.pk, "the worker running it stopped responding")
    # heartbeat_at on a queued job marks its last re-send, so a job waiting behind a long queue is re-sent
    # once per stale period, not on every reaper run.
    waiting = Job.objects.filter(state=Job.State.QUEUED, created_at__lt=cutoff, started_at=None).filter(
        Q(heartbeat_at=None) | Q(heartbeat_at__lt=cutoff))
    for job in waiting:
        if Job.objects.filter(pk=job.pk, state=Job.State.QUEUED).update(heartbeat_at=now):
            enqueue(job.pk, get_kind(job.kind).queue)
            resent += 1
    if requeued or failed or resent:
        logger.warning("reaped stale jobs: %s requeued, %s failed, %s resent", requeued, failed, resent)
    return {"requeued": requeued, "failed": failed, "resent": resent}
