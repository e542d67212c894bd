"""Queueing the jobs that act on versions."""

from __future__ import annotations

from django.db import transaction

from console.catalog.services import NotDeployable
from console.models import ModelVersion
from jobs.services import start_job


def queue_optimization(*, version: ModelVersion, kind: str, params: dict, dataset=None, user=None):
    """Queue an optimize / optimize_for_device job on a checked version."""
    if not version.is_servable:
        raise NotDeployable(f"v{version.number} is {version.state}; only a checked (ready) version can be optimized.")
    job_params = {**params, "dataset": dataset.pk if dataset is not None else None}
    with transaction.atomic():
        return start_job(project=version.model.project, kind=kind, params=job_params, input_version=version, user=user)
