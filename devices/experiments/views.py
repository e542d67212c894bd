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
from devices.experiments.serializers import ExperimentSerializer, ResultsFilterSerializer
from devices.models import Experiment

PAGE_SIZE = 50
SERIES_COLUMNS = ["metric", "day", "arm", "value", "low", "high", "units", "diff", "diff_low", "diff_high"]


def _arms_from_text(text: str) -> list[dict]:
    """ "1:10, 2:10" -> version 1 at 10 %, version 2 at 10 % (the first is control)."""
    arms = []
    for part in filter(None, (p.strip() for p in text.replace("\n", ",").split(","))):
        number, _, weight = part.partition(":")
        try:
            arms.append({"version": int(number.strip().lstrip("v")), "weight_percent": float(weight)})
        except ValueError:
            raise Refused(f"arm {part!r}: write version:weight, e.g. 1:10, 2:10 (the first is control).") from None
    return arms


def _create_from_form(request, model):
    data = request.POST
    body = {
        "name": data.get("name", "").strip(),
        "traffic_percent": data.get("traffic_percent") or 0,
        "arms": _arms_from_text(data.get("arms", "")),
        "primary_metric": data.get("primary_metric", ""),
        "guardrail_metrics": data.getlist("guardrail_metrics"),
        "sequential": data.get("sequential") == "on",
        "target": {
            key: value
            for key, value in {
                "device_types": data.getlist("device_types"),
                "regions": [r.strip().upper() for r in data.get("regions", "").split(",") if r.strip()],
            }.items()
            if value
        },
    }
    serializer = ExperimentSerializer(data=body, context={"model": model})
    if not serializer.is_valid():
        raise Refused(" ".join(f"{field}: {errors}" for field, errors in serializer.errors.items()))
    return services.create_experiment(model=model, user=request.user, **serializer.validated_data)


@require_http_methods(["GET", "POST"])
@scoped_page(MODEL)
def experiments_page(request, access, project, model):
    if request.method == "POST":
        try:
            experiment = _create_from_form(request, access.model)
        except Refused as exc:
            messages.error(request, str(exc))
            return redirect("experiments", project=project, model=model)
        messages.success(request, f"Experiment {experiment.name} created as a draft: start it when ready.")
        return redirect("experiment", project=project, model=model, experiment_id=experiment.pk)
    experiments = (
        Experiment.objects.filter(model=access.model).prefetch_related("arms__version").order_by("-created_at")
    )[:PAGE_SIZE]
    return render(
        request,
        "devices/experiments.html",
        {
            "project": access.project,
            "model": access.model,
            "experiments": experiments,
            "page_size": PAGE_SIZE,
            "can_change": access.may(roles.CHANGE),
            "metrics": METRICS,
            "device_types": device_type_slugs(access.project),
            "ready_versions": access.model.versions.servable().order_by("number"),
        },
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
