"""Developer REST API for the fleet: settings, enrollment key, devices and their history."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from console.projects import access, roles
from devices.fleet import services as fleet_services
from devices.fleet.queries import filtered_devices
from devices.fleet.serializers import (
    DeviceEventSerializer,
    DeviceSerializer,
    EnrollmentKeySerializer,
    FleetFilterSerializer,
    FleetSettingsSerializer,
)
from devices.models import Device


def device_for(user, project_slug: str, device_id: str, action: str = roles.VIEW) -> Device:
    project, _ = access.project_for(user, project_slug, action)
    return get_object_or_404(Device.objects.select_related("device_type", "project"), project=project,
                             device_id=device_id)


class FleetSettingsView(generics.RetrieveUpdateAPIView):
    """The project's enrollment key status, public signing key and default check-in interval."""

    serializer_class = FleetSettingsSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self):
        action = roles.MANAGE if self.request.method == "PATCH" else roles.VIEW
        project, _ = access.project_for(self.request.user, self.kwargs["project"], action)
        return fleet_services.fleet_settings_for(project)

    def perform_update(self, serializer):
        if "checkin_interval_s" in serializer.validated_data:
            serializer.instance = fleet_services.set_project_checkin_interval(
                fleet=serializer.instance, seconds=serializer.validated_data["checkin_interval_s"])


class EnrollmentKeyView(APIView):
    @extend_schema(request=None, responses={201: EnrollmentKeySerializer},
                   description="Issue a new enrollment key (owners). Shown once; the previous key stops working.")
    def post(self, request, project):
        project_obj, _ = access.project_for(request.user, project, roles.MANAGE)
        fleet, raw = fleet_services.rotate_enrollment_key(project=project_obj)
        return Response({"enrollment_key": raw, "enrollment_key_prefix": fleet.enrollment_key_prefix},
                        status=status.HTTP_201_CREATED)


@extend_schema(parameters=[FleetFilterSerializer])
class DeviceList(generics.ListAPIView):
    serializer_class = DeviceSerializer

    def get_queryset(self):
        project, _ = access.project_for(self.request.user, self.kwargs["project"])
        filters = FleetFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return filtered_devices(project, filters.validated_data)


class DeviceDetail(generics.RetrieveUpdateAPIView):
    """A device with desired vs installed per model; PATCH sets its own check-in interval (null: project's)."""

    serializer_class = DeviceSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self):
        action = roles.CHANGE if self.request.method == "PATCH" else roles.VIEW
        return device_for(self.request.user, self.kwargs["project"], self.kwargs["device_id"], action)

    def perform_update(self, serializer):
        if "checkin_interval_s" in serializer.validated_data:
            serializer.instance = fleet_services.set_device_checkin_interval(
                device=serializer.instance, seconds=serializer.validated_data["checkin_interval_s"])


class DeviceRevoke(APIView):
    @extend_schema(request=None, responses={200: DeviceSerializer})
    def post(self, request, project, device_id):
        device = device_for(request.user, project, device_id, roles.CHANGE)
        device = fleet_services.revoke_device(device=device, user=request.user)
        return Response(DeviceSerializer(device).data)


class DeviceEvents(generics.ListAPIView):
    serializer_class = DeviceEventSerializer

    def get_queryset(self):
        device = device_for(self.request.user, self.kwargs["project"], self.kwargs["device_id"])
        return device.events.select_related("model", "version")
