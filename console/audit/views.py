"""Pages: a project's audit log, filtered, and the same rows as CSV."""

from __future__ import annotations

import csv
import json

from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from console.audit.queries import AuditQuerySerializer, csv_rows, entries_of, row
from console.audit.recording import KINDS
from console.projects.permissions import PROJECT, scoped_page

PAGE_SIZE = 50


class _Echo:
    """csv.writer's file: hands each line back to the streaming response."""

    def write(self, value: str) -> str:
        return value


def _filtered(request, access):
    query = AuditQuerySerializer(data=request.GET)
    valid = query.is_valid()
    entries = entries_of(access.project, query.validated_data if valid else {})
    return query, valid, entries


@scoped_page(PROJECT)
@require_safe
def audit_page(request, access, project):
    query, valid, entries = _filtered(request, access)
    page = Paginator(entries if valid else entries.none(), PAGE_SIZE).get_page(request.GET.get("page"))
    filters = request.GET.copy()
    filters.pop("page", None)
    return render(
        request,
        "console/audit.html",
        {
            "project": access.project,
            "membership": access.membership,
            "page": page,
            "rows": [row(entry) for entry in page],
            "errors": {} if valid else query.errors,
            "kinds": sorted(KINDS),
            "filters": request.GET,
            "filter_query": filters.urlencode(),
        },
    )


@scoped_page(PROJECT)
@require_safe
def audit_csv(request, access, project):
    """Every entry the same filters select on the page, not only one page of them."""
    query, valid, entries = _filtered(request, access)
    if not valid:
        return HttpResponseBadRequest(json.dumps(query.errors), content_type="application/json")
    writer = csv.writer(_Echo())
    lines = (writer.writerow(line) for line in csv_rows(entries.iterator()))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{access.project.slug}-audit.csv"'
    return response
