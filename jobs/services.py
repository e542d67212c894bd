"""State changes of jobs. Every transition of Job.state happens here.

A job reaches its end state (succeeded, failed, cancelled) in one transaction together with its kind's hook
(``on_success`` / ``on_failure``), and each transition is a conditional UPDATE on the job row: whichever of
two racing transitions updates the row first wins, the other changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from .models import Job
from .registry import get_kind, kinds

logger = logging.getLogger(__name__)

# A running job's worker writes heartbeat_at this often; one silent for two beats may have lost its worker.
HEARTBEAT_SECONDS = 20


def _now_line(message: str) -> str:
    return f"[{timezone.now():%H:%M:%S}] {message}\n"


def _log(message: str):
    return Concat(F("log"), Value(_now_line(message)))


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
    # robust: whatever goes wrong with the send happens after the commit, so it must not fail the caller, whose
    # rows (a version and its job) are already saved; the reaper sends a queued job again.
    transaction.on_commit(lambda: enqueue(job.pk, job_kind.queue), robust=True)
    return job


def enqueue(job_id: int, queue: str) -> bool:
    """Send a committed job to its queue. False, with a line in the job's log, when the broker did not take it.

    Does not raise for a broker that is down: the job row is the truth, and ``reap_stale_jobs`` sends a job
    that waited a stale period unclaimed again.
    """
    from .tasks import run_job  # tasks import services; import here to keep the cycle out of module load

    try:
        run_job.apply_async(kwargs={"job_id": job_id}, queue=queue)
    except Exception as exc:  # kombu wraps most transport errors in OperationalError, but not all of them
        logger.warning("job %s was not sent to %s: %s", job_id, queue, exc)
        Job.objects.filter(pk=job_id).update(
            log=_log(f"not sent: the broker did not take it ({exc}); the reaper sends it again")
        )
        return False
    return True


def claim_job(job_id: int) -> bool:
    """Atomically move a queued job to running; False if someone else has it, it is gone or out of attempts.

    A queued job that already used JOB_MAX_ATTEMPTS (a message sent twice, a retry after the last attempt) is
    failed here instead of run again.
    """
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, state=Job.State.QUEUED, attempts__lt=settings.JOB_MAX_ATTEMPTS).update(
        state=Job.State.RUNNING,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        log=_log("started"),
    )
    if claimed:
        return True
    spent = Job.objects.filter(pk=job_id, state=Job.State.QUEUED, attempts__gte=settings.JOB_MAX_ATTEMPTS)
    attempts = spent.values_list("attempts", flat=True).first()
    if attempts is not None:
        fail_job(job_id, f"gave up after {attempts} attempt(s), the limit (JOB_MAX_ATTEMPTS)")
    return False


def report_progress(job_id: int, progress: int, message: str = "") -> None:
    fields: dict = {"progress": max(0, min(100, int(progress))), "heartbeat_at": timezone.now()}
    if message:
        fields["log"] = _log(message)
    Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(**fields)


def touch_job(job_id: int) -> None:
    Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(heartbeat_at=timezone.now())


def finish_job(job_id: int, *, result: dict | None = None, output_version=None, message: str = "done") -> bool:
    """Mark a running job succeeded and let its kind settle the outcome, in one transaction.

    False when the job is no longer running (cancelled, or given up by the reaper): then nothing is settled.
    """
    with transaction.atomic():
        changed = Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(
            state=Job.State.SUCCEEDED,
            progress=100,
            result=result or {},
            output_version=output_version,
            finished_at=timezone.now(),
            log=_log(message),
        )
        if changed:
            job = Job.objects.get(pk=job_id)
            get_kind(job.kind).on_success(job)
    return changed == 1


def fail_job(job_id: int, reason: str) -> bool:
    """Mark a queued or running job failed with its reason and let its kind clean up, in one transaction."""
    reason = reason.strip() or "failed without a message"
    with transaction.atomic():
        changed = Job.objects.filter(pk=job_id, state__in=[Job.State.QUEUED, Job.State.RUNNING]).update(
            state=Job.State.FAILED,
            error=reason[:5000],
            finished_at=timezone.now(),
            log=_log(f"failed: {reason[:500]}"),
        )
        if changed:
            job = Job.objects.get(pk=job_id)
            get_kind(job.kind).on_failure(job, reason)
    return changed == 1


def release_for_retry(job_id: int, reason: str) -> bool:
    """A running job hit a transient error: put it back in the queue (True), or fail it when out of attempts.

    Sends nothing: the caller's retry (Celery's own, in ``run_job``) is the one message that brings it back.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id, state=Job.State.RUNNING).first()
        if job is None:
            return False
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            fail_job(job_id, f"gave up after {job.attempts} attempt(s); the last one failed with: {reason}")
            return False
        Job.objects.filter(pk=job_id).update(
            state=Job.State.QUEUED,
            heartbeat_at=timezone.now(),
            log=_log(
                f"attempt {job.attempts} of {settings.JOB_MAX_ATTEMPTS} hit a transient error ({reason}); retrying"
            ),
        )
    return True


def requeue_job(job_id: int, reason: str) -> bool:
    """Put a running job whose worker went silent back in its queue and send it once the transaction commits."""
    changed = Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(
        state=Job.State.QUEUED, heartbeat_at=timezone.now(), log=_log(f"requeued: {reason}")
    )
    if changed:
        job = Job.objects.get(pk=job_id)
        transaction.on_commit(lambda: enqueue(job.pk, get_kind(job.kind).queue), robust=True)
    return changed == 1


def cancel_job(job: Job) -> bool:
    """Cancel a job that has not finished, and let its kind clean up, in one transaction.

    A running handler notices at its next progress report; whatever it returns afterwards is not saved.
    """
    with transaction.atomic():
        changed = Job.objects.filter(pk=job.pk, state__in=[Job.State.QUEUED, Job.State.RUNNING]).update(
            state=Job.State.CANCELLED, finished_at=timezone.now(), log=_log("cancelled")
        )
        if changed:
            get_kind(job.kind).on_failure(job, "cancelled")
    return changed == 1


def _stale_period() -> timedelta:
    return timedelta(seconds=settings.JOB_STALE_SECONDS)


def reap_stale_jobs(*, now=None) -> dict:
    """Running jobs whose worker went silent are retried, or failed once out of attempts.

    Queued jobs that sat unclaimed for as long are sent again (a lost broker message, or a broker that was down
    when they were sent); a duplicate message is harmless because claiming is atomic. Then each kind cleans up
    what its jobs left unsettled (``JobKind.reap``).
    """
    now = now or timezone.now()
    cutoff = now - _stale_period()
    requeued = failed = resent = 0
    stale = Job.objects.filter(state=Job.State.RUNNING).filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at=None))
    for job in stale:
        with transaction.atomic():
            if job.attempts >= settings.JOB_MAX_ATTEMPTS:
                failed += fail_job(job.pk, f"the worker running this job stopped responding {job.attempts} time(s)")
            else:
                requeued += requeue_job(job.pk, "the worker running it stopped responding")
    # heartbeat_at on a queued job marks its last send (or its return to the queue), so a job waiting behind a
    # long queue is sent again once per stale period, not on every reaper run.
    waiting = Job.objects.filter(state=Job.State.QUEUED, created_at__lt=cutoff).filter(
        Q(heartbeat_at=None) | Q(heartbeat_at__lt=cutoff)
    )
    for job in waiting:
        if Job.objects.filter(pk=job.pk, state=Job.State.QUEUED).update(heartbeat_at=now):
            resent += enqueue(job.pk, get_kind(job.kind).queue)
    settled = sum(kind.reap(now=now) for kind in kinds().values() if kind.reap is not None)
    if requeued or failed or resent or settled:
        logger.warning(
            "reaped stale jobs: %s requeued, %s failed, %s resent, %s left unsettled by their jobs settled",
            requeued,
            failed,
            resent,
            settled,
        )
    return {"requeued": requeued, "failed": failed, "resent": resent, "settled": settled}


@dataclass(frozen=True)
class Outlook:
    """What a person watching an unfinished job should know when it is not moving, and when the reaper acts."""

    waiting_for_worker: bool  # queued and not taken by a worker yet
    silent_since: datetime | None  # running, but its worker has not written for a while (it may have died)
    retry_at: datetime  # when the reaper sends it again, retries it on another worker, or fails it
    gives_up: bool  # out of attempts: at retry_at the job fails instead

    @property
    def sentence(self) -> str:
        """The words the version page and the job API show (times in the server's time zone)."""
        at = f"{timezone.localtime(self.retry_at):%H:%M:%S}"
        if self.waiting_for_worker:
            return f"Waiting for a worker to take it; if none does, it is sent to its queue again at {at}."
        then = "the job fails (out of attempts)" if self.gives_up else "a retry is pending"
        since = f"{timezone.localtime(self.silent_since):%H:%M:%S}" if self.silent_since else "a while"
        return f"No word from its worker since {since}; if the worker has stopped, {then} at {at}."


def outlook(job: Job, *, now: datetime | None = None) -> Outlook | None:
    """None while the job is moving (or finished); else whether it waits for a worker or its worker went silent,
    and when the reaper acts on it (the same stale period ``reap_stale_jobs`` uses)."""
    now = now or timezone.now()
    quiet = timedelta(seconds=2 * HEARTBEAT_SECONDS)
    if job.state == Job.State.QUEUED:
        last_sent = max(job.created_at, job.heartbeat_at or job.created_at)
        if now - last_sent < quiet:
            return None
        return Outlook(waiting_for_worker=True, silent_since=None, retry_at=last_sent + _stale_period(), gives_up=False)
    if job.state == Job.State.RUNNING:
        last_heard = job.heartbeat_at or job.started_at or job.created_at
        if now - last_heard < quiet:
            return None
        return Outlook(
            waiting_for_worker=False,
            silent_since=last_heard,
            retry_at=last_heard + _stale_period(),
            gives_up=job.attempts >= settings.JOB_MAX_ATTEMPTS,
        )
    return None
