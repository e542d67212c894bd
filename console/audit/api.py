"""Developer REST API for the audit log: read-only, one project at a time."""

from __future__ import annotations

from auditlog.models import LogEntry
from drf_spectacular.utils import extend_schema
from rest_framework import generics

from console.audit.queries import AuditEntrySerializer, AuditQuerySerializer, entries_of
from console.projects.permissions import ScopedMixin


@extend_schema(parameters=[AuditQuerySerializer])
class AuditList(ScopedMixin, generics.ListAPIView):
    """Who changed what in the project, when, from where, before and after; newest first."""

    serializer_class = AuditEntrySerializer

    def get_queryset(self):
        if self.schema_only:
            return LogEntry.objects.none()
        query = AuditQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return entries_of(self.access.project, query.validated_data)
