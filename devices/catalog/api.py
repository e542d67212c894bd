"""Developer REST API for device types: the built-in catalog and a project's own."""

from __future__ import annotations

from django.db.models import ProtectedError
from rest_framework import generics
from rest_framework.exceptions import PermissionDenied, ValidationError

from console.errors import Conflict
from console.projects import access, roles
from devices.catalog.serializers import DeviceTypeSerializer
from devices.models import DeviceType


class DeviceTypeList(generics.ListCreateAPIView):
    """Built-in device types plus the project's own; developers may add the project's own."""

    serializer_class = DeviceTypeSerializer

    def get_queryset(self):
        project, _ = access.project_for(self.request.user, self.kwargs["project"])
        return DeviceType.objects.visible_to(project)

    def perform_create(self, serializer):
        project, _ = access.project_for(self.request.user, self.kwargs["project"], roles.CHANGE)
        slug = serializer.validated_data["slug"]
        if DeviceType.objects.visible_to(project).filter(slug=slug).exists():
            raise ValidationError({"slug": f"A device type {slug!r} already exists here."})
        serializer.save(project=project)


class DeviceTypeDetail(generics.RetrieveUpdateDestroyAPIView):
    serializer_class = DeviceTypeSerializer
    lookup_field = "slug"

    def get_queryset(self):
        project, _ = access.project_for(self.request.user, self.kwargs["project"])
        return DeviceType.objects.visible_to(project)

    def _check_change(self, device_type):
        access.project_for(self.request.user, self.kwargs["project"], roles.CHANGE)
        if device_type.project_id is None and not self.request.user.is_staff:
            raise PermissionDenied("Built-in device types are shared by all projects; only staff may change them.")

    def perform_update(self, serializer):
        self._check_change(serializer.instance)
        serializer.save()

    def perform_destroy(self, instance):
        self._check_change(instance)
        try:
            instance.delete()
        except ProtectedError as exc:
            raise Conflict(f"Device type {instance.slug!r} is still used by enrolled devices; move or revoke them "
                           "first.") from exc
