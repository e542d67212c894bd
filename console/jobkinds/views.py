"""Page: a project's jobs, filtered by kind, state and model, with cancel and retry."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render

from console.errors import Refused
from console.jobkinds.queries import JobFilterSerializer, jobs_of, rows
from console.jobkinds.services import retry_job
from console.projects import roles
from console.projects.permissions import PROJECT, scoped_page
from jobs.models import Job
from jobs.registry import kinds
from jobs.services import cancel_job

PAGE_SIZE = 25


@scoped_page(PROJECT)
def jobs_page(request, access, project):
    if request.method == "POST":
        return _act(request, access)
    filters = JobFilterSerializer(data=request.GET)
    valid = filters.is_valid()
    jobs = jobs_of(access.project, filters.validated_data) if valid else Job.objects.none()
    page = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "console/jobs.html",
        {
            "project": access.project,
            "membership": access.membership,
            "can_change": access.may(roles.CHANGE),
            "page": page,
            "rows": rows(access.project, list(page)),
            "filters": request.GET,
            "filter_errors": {} if valid else filters.errors,
            "query": query.urlencode(),
            "kinds": sorted(kinds().items()),
            "states": Job.State.choices,
            "model_names": access.project.models.order_by("name").values_list("name", flat=True),
        },
    )


def _act(request, access):
    """Cancel or retry one job of this project, then back to the list as it was filtered."""
    back = request.POST.get("back", "")
    target = f"{request.path}?{back}" if back else request.path
    job_id = request.POST.get("job", "")
    action = request.POST.get("action")
    if action not in ("cancel", "retry") or not job_id.isdigit():
        messages.error(request, "Choose a job and an action: cancel or retry.")
        return redirect(target)
    job = get_object_or_404(Job, project=access.project, pk=int(job_id))
    if action == "cancel":
        if cancel_job(job):
            messages.info(request, f"Cancelled job #{job.pk} ({job.kind}).")
        else:
            job.refresh_from_db()
            messages.error(request, f"Job #{job.pk} already ended ({job.state}); nothing was cancelled.")
        return redirect(target)
    try:
        new = retry_job(job=job, user=request.user)
    except Refused as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Queued job #{new.pk} ({new.kind}), a retry of job #{job.pk}.")
    return redirect(target)
