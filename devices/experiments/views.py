"""Experiment pages: a model's experiments, and one experiment's dashboard with its charts, tables and CSV."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from console.errors import Refused
from console.projects import roles
from console.projects.permissions import MODEL, scoped_page
from devices.catalog.queries import device_type_slugs
from devices.experiments import services
from devices.experiments.charts import figures_json
from devices.experiments.metrics import METRICS
from devices.experiments.results import experiment_results
from devices.experiments.serializers import ResultsFilterSerializer
from devices.models import Experiment

PAGE_SIZE = 50
SERIES_COLUMNS = ["metric", "day", "arm", "value", "low", "high", "units", "diff", "diff_low", "diff_high"]


@scoped_page(MODEL)
def experiments_page(request, access, project, model):
    experiments = (
        Experiment.objects.filter(model=access.model).prefetch_related("arms__version").order_by("-created_at")
    )[:PAGE_SIZE]
    return render(
        request,
        "devices/experiments.html",
        {"project": access.project, "model": access.model, "experiments": experiments, "page_size": PAGE_SIZE},
    )


def _filters(request) -> dict[str, str]:
    query = ResultsFilterSerializer(data=request.GET)
    return query.validated_data if query.is_valid() else {"device_type": "", "region": ""}


@require_http_methods(["GET", "POST"])
@scoped_page(MODEL)
def experiment_page(request, access, project, model, experiment_id):
    experiment = get_object_or_404(
        Experiment.objects.select_related("promoted_rollout"), model=access.model, pk=experiment_id
    )
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "start":
                services.start_experiment(experiment=experiment, user=request.user)
            elif action == "stop":
                services.stop_experiment(
                    experiment=experiment, user=request.user, reason=request.POST.get("reason", "")
                )
            elif action == "promote":
                arm = experiment.arms.filter(pk=request.POST.get("arm") or 0).select_related("version").first()
                if arm is None:
                    raise Refused("pick the arm to promote.")
                rollout = services.promote_arm(experiment=experiment, arm=arm, user=request.user)
                messages.success(
                    request, f"Rollout {rollout.pk} of v{arm.version.number} proposed: submit it for approval."
                )
            else:
                raise Refused(f"unknown action {action!r}.")
        except Refused as exc:
            messages.error(request, str(exc))
        return redirect("experiment", project=project, model=model, experiment_id=experiment.pk)
    filters = _filters(request)
    results = experiment_results(experiment, **filters)
    charts = figures_json(results)
    return render(
        request,
        "devices/experiment.html",
        {
            "project": access.project,
            "model": access.model,
            "experiment": experiment,
            "results": results,
            "charts": charts,
            "metrics": METRICS,
            "filters": filters,
            "device_types": device_type_slugs(access.project),
            "can_change": access.may(roles.CHANGE),
            "series_columns": SERIES_COLUMNS,
        },
    )


@scoped_page(MODEL)
def experiment_csv(request, access, project, model, experiment_id):
    """Every chart's numbers: one row per metric, day and arm (the filters of the page apply)."""
    experiment = get_object_or_404(Experiment, model=access.model, pk=experiment_id)
    results = experiment_results(experiment, **_filters(request))
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="experiment-{experiment.pk}.csv"'
    writer = csv.writer(response)
    writer.writerow(SERIES_COLUMNS)
    for name, rows in results.series.items():
        for row in rows:
            writer.writerow([name, *(row[column] for column in SERIES_COLUMNS[1:])])
    return response
