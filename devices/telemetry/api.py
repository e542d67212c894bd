"""Developer REST API for the daily rollups of device events."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics

from console.projects.permissions import MODEL, ScopedMixin
from devices.models import DailyRollup
from devices.telemetry.serializers import RollupFilterSerializer, RollupSerializer


class RollupList(ScopedMixin, generics.ListAPIView):
    """Daily rollups of a model's device events per version, device type and region."""

    scope = MODEL
    queryset = DailyRollup.objects.select_related("version", "device_type")
    pagination_class = None
    serializer_class = RollupSerializer

    @extend_schema(parameters=[RollupFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        rollups = super().get_queryset()
        if self.schema_only:
            return rollups
        query = RollupFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        since = timezone.now().date() - timedelta(days=query.validated_data["days"] - 1)
        return rollups.filter(day__gte=since)
