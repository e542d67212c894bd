"""Developer REST API for the fleet: settings, enrollment key, devices and their history."""

from __future__ import annotations

from django.db.models import prefetch_related_objects
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from console.projects import roles
from console.projects.permissions import DEVICE, ScopedMixin
from devices.fleet import services as fleet_services
from devices.fleet.queries import filtered_devices, model_states_with_versions
from devices.fleet.serializers import (
    DeviceEventSerializer,
    DeviceSerializer,
    EnrollmentKeySerializer,
    FleetFilterSerializer,
    FleetSettingsSerializer,
)
from devices.models import Device, DeviceEvent


class FleetSettingsView(ScopedMixin, generics.RetrieveUpdateAPIView):
    """The project's enrollment key status, public signing key and default check-in interval."""

    serializer_class = FleetSettingsSerializer
    http_method_names = ["get", "patch", "head", "options"]
    required_role = {"PATCH": roles.MANAGE}

    def get_object(self):
        return fleet_services.fleet_settings_for(self.access.project)

    def perform_update(self, serializer):
        if "checkin_interval_s" in serializer.validated_data:
            serializer.instance = fleet_services.set_project_checkin_interval(
                fleet=serializer.instance, seconds=serializer.validated_data["checkin_interval_s"]
            )


class EnrollmentKeyView(ScopedMixin, APIView):
    required_role = {"POST": roles.MANAGE}

    @extend_schema(
        request=None,
        responses={201: EnrollmentKeySerializer},
        description="Issue a new enrollment key (owners). Shown once; the previous key stops working.",
    )
    def post(self, request, project):
        fleet, raw = fleet_services.rotate_enrollment_key(project=self.access.project)
        return Response(
            {"enrollment_key": raw, "enrollment_key_prefix": fleet.enrollment_key_prefix},
            status=status.HTTP_201_CREATED,
        )


@extend_schema(parameters=[FleetFilterSerializer])
class DeviceList(ScopedMixin, generics.ListAPIView):
    serializer_class = DeviceSerializer
    queryset = Device.objects.all()

    def get_queryset(self):
        if self.schema_only:
            return self.queryset.none()
        filters = FleetFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return filtered_devices(self.access.project, filters.validated_data)


class DeviceDetail(ScopedMixin, generics.RetrieveUpdateAPIView):
    """A device with desired vs installed per model; PATCH sets its own check-in interval (null: project's)."""

    serializer_class = DeviceSerializer
    http_method_names = ["get", "patch", "head", "options"]
    scope = DEVICE

    def get_object(self):
        device = self.access.device
        prefetch_related_objects([device], model_states_with_versions())
        return device

    def perform_update(self, serializer):
        if "checkin_interval_s" in serializer.validated_data:
            serializer.instance = fleet_services.set_device_checkin_interval(
                device=serializer.instance, seconds=serializer.validated_data["checkin_interval_s"]
            )


class DeviceRevoke(ScopedMixin, APIView):
    scope = DEVICE

    @extend_schema(request=None, responses={200: DeviceSerializer})
    def post(self, request, project, device_id):
        device = fleet_services.revoke_device(device=self.access.device, user=request.user)
        return Response(DeviceSerializer(device).data)


class DeviceEvents(ScopedMixin, generics.ListAPIView):
    serializer_class = DeviceEventSerializer
    scope = DEVICE
    queryset = DeviceEvent.objects.select_related("model", "version")
