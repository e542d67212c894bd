"""Reading a project's jobs for the jobs page: filters validated by a serializer, rows with what each works on."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import serializers

from console.models import Dataset, Project
from jobs.models import Job
from jobs.registry import kinds


class JobFilterSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[], required=False, help_text="check, optimize, optimize_for_device, ...")
    state = serializers.ChoiceField(choices=Job.State.choices, required=False)
    model = serializers.SlugField(max_length=100, required=False, help_text="the model whose versions it works on")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = sorted(kinds())  # registered from the apps' ready()


def jobs_of(project: Project, filters: dict[str, Any]) -> QuerySet[Job]:
    jobs = Job.objects.filter(project=project)
    if "kind" in filters:
        jobs = jobs.filter(kind=filters["kind"])
    if "state" in filters:
        jobs = jobs.filter(state=filters["state"])
    if "model" in filters:
        jobs = jobs.filter(input_version__model__name=filters["model"])
    return jobs.select_related("created_by", "input_version__model", "output_version__model").order_by(
        "-created_at", "-pk"
    )


def duration(job: Job, now: datetime) -> timedelta | None:
    """How long it ran (so far, while running); None before it started."""
    if job.started_at is None:
        return None
    return (job.finished_at or now) - job.started_at


def subject(job: Job, datasets: dict[int, str]) -> list[tuple[str, str]]:
    """What the job works on besides its version, as (label, value) pairs: transform, device type, dataset."""
    params = job.params or {}
    parts = []
    if params.get("transform"):
        parts.append(("transform", str(params["transform"])))
    if params.get("device_type"):
        parts.append(("device type", str(params["device_type"])))
    if params.get("device_type_id"):
        parts.append(("device type id", str(params["device_type_id"])))
    if params.get("dataset"):
        parts.append(("dataset", datasets.get(params["dataset"], f"#{params['dataset']} (deleted)")))
    return parts


def rows(project: Project, jobs: list[Job]) -> list[dict[str, Any]]:
    """The page's rows: one query for the datasets the jobs name, whatever the number of jobs."""
    ids = {job.params.get("dataset") for job in jobs if isinstance(job.params.get("dataset"), int)}
    named = Dataset.objects.filter(model__project=project, pk__in=ids) if ids else Dataset.objects.none()
    datasets = dict(named.values_list("pk", "name"))
    now = timezone.now()
    return [{"job": job, "duration": duration(job, now), "subject": subject(job, datasets)} for job in jobs]
