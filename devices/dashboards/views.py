"""Dashboard pages: project overview, download status, and a model's versions compared.

Filters come from the URL (``filters.DashboardFilterSerializer``) and apply to every chart of the page. The same
URL with ``csv=<chart id>`` answers that chart's numbers as CSV, from the same builder as the page (which then
builds that chart only).
"""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_safe

from console.projects.permissions import MODEL, PROJECT, scoped_page
from devices.dashboards import pages
from devices.dashboards.filters import RANGES, DashboardFilterSerializer, choices

STUCK_HOURS = (1, 6, 24, 72, 168)
DEFAULT_STUCK_HOURS = 24


def _filters(request):
    serializer = DashboardFilterSerializer(data=request.GET)
    if serializer.is_valid():
        return serializer.validated_data, {}
    return DashboardFilterSerializer(data={}).run_validation({}), serializer.errors


def _render(request, access, template: str, built: dict, errors: dict, found=None, **extra):
    wanted = request.GET.get("csv")
    if wanted is not None:
        chart = next((c for c in built["charts"] if c.id == wanted), None)
        if chart is None:
            known = ", ".join(built.get("chart_ids") or [c.id for c in built["charts"]])
            return HttpResponseBadRequest(f"No chart {wanted!r} on this page; choose one of: {known}.")
        if errors:
            return HttpResponseBadRequest(f"Fix the filters first: {dict(errors)}")
        response = HttpResponse(chart.csv(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{access.project.slug}-{chart.id}.csv"'
        return response
    query = request.GET.copy()
    query.pop("csv", None)
    project = access.project
    return render(
        request,
        template,
        {
            "project": project,
            "membership": access.membership,
            "filters": request.GET,
            "filter_errors": errors,
            "query": query.urlencode(),
            "ranges": RANGES,
            "choices": choices(project) if found is None else _choices(found),
            **built,
            **extra,
        },
    )


def _choices(found: list[pages.Configuration]) -> dict:
    """``filters.choices`` from the configurations a page has read already."""
    return {
        "device_types": sorted({row.device_type for row in found}),
        "regions": sorted({row.region for row in found if row.region}),
        "app_versions": sorted({row.app_version for row in found}),
    }


@scoped_page(PROJECT)
@require_safe
def overview_page(request, access, project):
    filters, errors = _filters(request)
    # The filter form's options and the device charts read them; a CSV reads them only for a device chart.
    found = None if "csv" in request.GET else pages.configurations(access.project)
    built = pages.overview(access.project, filters, request.GET.get("csv"), found)
    return _render(request, access, "devices/overview.html", built, errors, found)


@scoped_page(PROJECT)
@require_safe
def downloads_page(request, access, project):
    filters, errors = _filters(request)
    raw = request.GET.get("stuck_hours") or str(DEFAULT_STUCK_HOURS)
    hours = int(raw) if raw.isdigit() and int(raw) in STUCK_HOURS else DEFAULT_STUCK_HOURS
    if str(hours) != raw:
        errors = {**errors, "stuck_hours": [f"Choose one of {', '.join(map(str, STUCK_HOURS))} hours."]}
    built = pages.download_status(access.project, filters, hours, request.GET.get("csv"))
    return _render(
        request, access, "devices/downloads.html", built, errors, stuck_hours=hours, stuck_choices=STUCK_HOURS
    )


@scoped_page(MODEL)
@require_safe
def model_dashboard_page(request, access, project, model):
    filters, errors = _filters(request)
    built = pages.model_comparison(access.model, filters, request.GET.get("csv"))
    return _render(request, access, "devices/model_dashboard.html", built, errors, model=access.model)
