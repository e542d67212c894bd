"""Developer REST API for device types: the built-in catalog and a project's own."""

from __future__ import annotations

from django.db.models import ProtectedError
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission

from console.errors import Conflict
from console.projects.permissions import ScopedMixin
from devices.catalog.serializers import DeviceTypeSerializer
from devices.models import DeviceType


class VisibleDeviceTypes(ScopedMixin):
    """Built-in device types plus the project's own, never another project's."""

    def get_queryset(self):
        if self.schema_only:
            return DeviceType.objects.none()
        return DeviceType.objects.visible_to(self.access.project)


class DeviceTypeList(VisibleDeviceTypes, generics.ListCreateAPIView):
    """Built-in device types plus the project's own; developers may add the project's own."""

    serializer_class = DeviceTypeSerializer

    def perform_create(self, serializer):
        slug = serializer.validated_data["slug"]
        if self.get_queryset().filter(slug=slug).exists():
            raise ValidationError({"slug": f"A device type {slug!r} already exists here."})
        serializer.save(project=self.access.project)


class BuiltinsAreStaffOnly(BasePermission):
    message = "Built-in device types are shared by all projects; only staff may change them."

    def has_object_permission(self, request, view, obj) -> bool:
        return request.method in SAFE_METHODS or obj.project_id is not None or request.user.is_staff


@extend_schema_view(
    delete=extend_schema(
        responses={204: None, 409: OpenApiResponse(description="Enrolled devices still use this device type.")}
    )
)
class DeviceTypeDetail(VisibleDeviceTypes, generics.RetrieveUpdateDestroyAPIView):
    serializer_class = DeviceTypeSerializer
    lookup_field = "slug"
    permission_classes = [*ScopedMixin.permission_classes, BuiltinsAreStaffOnly]

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError as exc:
            raise Conflict(
                f"Device type {instance.slug!r} is still used by enrolled devices; move or revoke them first."
            ) from exc
