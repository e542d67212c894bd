"""Queueing the jobs that act on versions."""

from __future__ import annotations

from django.db import transaction

from console.catalog.services import NotDeployable, NotRecheckable, recheck_version
from console.errors import Refused
from console.jobkinds.check import CHECK
from console.jobkinds.optimize import OPTIMIZE, OPTIMIZE_FOR_DEVICE
from console.models import ModelVersion
from jobs.models import Job
from jobs.services import start_job

OPTIMIZING_KINDS = (OPTIMIZE.name, OPTIMIZE_FOR_DEVICE.name)


def queue_optimization(*, version: ModelVersion, kind: str, params: dict, dataset=None, user=None):
    """Queue an optimize / optimize_for_device job on a checked version."""
    if not version.is_servable:
        raise NotDeployable(f"v{version.number} is {version.state}; only a checked (ready) version can be optimized.")
    job_params = {**params, "dataset": dataset.pk if dataset is not None else None}
    with transaction.atomic():
        return start_job(project=version.model.project, kind=kind, params=job_params, input_version=version, user=user)


def retry_job(*, job: Job, user=None) -> Job:
    """Queue a failed or cancelled job again, as a new job with the same kind, version and parameters.

    The old job keeps its log and error, and records the new one's id (``result["retried_as"]``) under a row lock,
    so two clicks on Retry queue one job. A check is retried through ``recheck_version``, which moves its version
    back to checking; an optimization only from a version that is still ready.
    """
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.state not in (Job.State.FAILED, Job.State.CANCELLED):
            raise Refused(f"Job #{locked.pk} is {locked.state}; only a failed or cancelled job can be retried.")
        if locked.result.get("retried_as"):
            raise Refused(f"Job #{locked.pk} was already retried as job #{locked.result['retried_as']}.")
        version = locked.input_version
        try:
            if locked.kind == CHECK.name and version is not None:
                new = recheck_version(version=version, user=user)
            else:
                if version is not None and locked.kind in OPTIMIZING_KINDS and not version.is_servable:
                    raise NotDeployable(
                        f"v{version.number} is {version.state}; only a checked (ready) version can be optimized."
                    )
                new = start_job(
                    project=locked.project, kind=locked.kind, params=locked.params, input_version=version, user=user
                )
        except (NotDeployable, NotRecheckable) as exc:
            raise Refused(str(exc)) from exc
        Job.objects.filter(pk=locked.pk).update(result={**locked.result, "retried_as": new.pk})
    return new
