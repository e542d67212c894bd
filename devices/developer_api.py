"""Developer REST API for the fleet, keys and targeting rules. Every lookup goes through console.access."""

from __future__ import annotations

from datetime import timedelta

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from console import access, roles

from . import preview, services
from .fleet import filtered_devices
from .models import DailyRollup, Device, TargetingRule
from .plans import load_model_plans
from .serializers import (
    DefaultVersionSerializer,
    DeviceEventSerializer,
    DeviceSerializer,
    EnrollmentKeySerializer,
    FleetFilterSerializer,
    FleetSettingsSerializer,
    PreviewSerializer,
    RollupFilterSerializer,
    RollupSerializer,
    RuleSerializer,
)


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
        return services.fleet_settings_for(project)

    def perform_update(self, serializer):
        if "checkin_interval_s" in serializer.validated_data:
            serializer.instance = services.set_project_checkin_interval(
                fleet=serializer.instance, seconds=serializer.validated_data["checkin_interval_s"])


class EnrollmentKeyView(APIView):
    @extend_schema(request=None, responses={201: EnrollmentKeySerializer},
                   description="Issue a new enrollment key (owners). Shown once; the previous key stops working.")
    def post(self, request, project):
        project_obj, _ = access.project_for(request.user, project, roles.MANAGE)
        fleet, raw = services.rotate_enrollment_key(project=project_obj)
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
            serializer.instance = services.set_device_checkin_interval(
                device=serializer.instance, seconds=serializer.validated_data["checkin_interval_s"])


class DeviceRevoke(APIView):
    @extend_schema(request=None, responses={200: DeviceSerializer})
    def post(self, request, project, device_id):
        device = device_for(request.user, project, device_id, roles.CHANGE)
        device = services.revoke_device(device=device, user=request.user)
        return Response(DeviceSerializer(device).data)


class DeviceEvents(generics.ListAPIView):
    serializer_class = DeviceEventSerializer

    def get_queryset(self):
        device = device_for(self.request.user, self.kwargs["project"], self.kwargs["device_id"])
        return device.events.select_related("model", "version")


class ModelScoped:
    """Views under /api/projects/<project>/models/<model>/."""

    def model_for(self, action: str = roles.VIEW):
        model, _ = access.model_for(self.request.user, self.kwargs["project"], self.kwargs["model"], action)
        return model


class RuleViewMixin(ModelScoped):
    def check_permissions(self, request):
        super().check_permissions(request)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            self.model_for(roles.CHANGE)  # a 403 before any validation message

    def get_queryset(self):
        return TargetingRule.objects.filter(model=self.model_for()).select_related("version")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if "model" in self.kwargs:  # absent while drf-spectacular builds the schema
            model = self.model_for()
            plan = load_model_plans(model.project_id, [model.name]).get(model.name)
            context.update(model=model, shadowed=preview.shadowing(plan) if plan else {})
        return context


class RuleList(RuleViewMixin, generics.ListCreateAPIView):
    """A model's targeting rules in evaluation order (priority, then id); ``shadowed_by`` names a rule that
    hides this one for every device."""

    serializer_class = RuleSerializer
    pagination_class = None

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.create_rule(
            model=serializer.context["model"], version=data["version"], conditions=data.get("conditions", {}),
            priority=data.get("priority", 100), description=data.get("description", ""), user=self.request.user)


class RuleDetail(RuleViewMixin, generics.RetrieveUpdateDestroyAPIView):
    serializer_class = RuleSerializer
    lookup_url_kwarg = "rule_id"

    def perform_update(self, serializer):
        serializer.instance = services.update_rule(rule=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_rule(rule=instance)


class RulePreview(ModelScoped, APIView):
    @extend_schema(request=PreviewSerializer, responses={200: dict}, description=(
        "For a sample device configuration: each rule's verdict in evaluation order and what a check-in would "
        "get; and how many enrolled devices each rule matches (and wins) now."))
    def post(self, request, project, model):
        model_obj = self.model_for()
        sample = PreviewSerializer(data=request.data)
        sample.is_valid(raise_exception=True)
        device_type = services.device_type_for(model_obj.project_id, sample.validated_data["device_type"])
        if device_type is None:
            raise ValidationError({"device_type": f"unknown device type {sample.validated_data['device_type']!r}."})
        plan = load_model_plans(model_obj.project_id, [model_obj.name])[model_obj.name]
        facts = preview.sample_facts(sample.validated_data, device_type)
        return Response({**preview.explain(plan, facts), "shadowed": preview.shadowing(plan),
                         "counts": preview.count_matches(model_obj.project_id, plan).as_dict()})


class DefaultVersionView(ModelScoped, APIView):
    @extend_schema(request=DefaultVersionSerializer, responses={200: DefaultVersionSerializer},
                   description="The version devices get when no rule matches (null: nothing).")
    def put(self, request, project, model):
        model_obj = self.model_for(roles.CHANGE)
        data = DefaultVersionSerializer(data=request.data, context={"model": model_obj})
        data.is_valid(raise_exception=True)
        services.set_default_version(model=model_obj, version=data.validated_data["version"])
        return Response({"version": data.validated_data["version"].number if data.validated_data["version"] else None})

    @extend_schema(responses={200: DefaultVersionSerializer})
    def get(self, request, project, model):
        model_obj = self.model_for()
        version = model_obj.default_version
        return Response({"version": version.number if version else None})


class RollupList(ModelScoped, generics.ListAPIView):
    """Daily rollups of a model's device events per version, device type and region."""

    pagination_class = None
    serializer_class = RollupSerializer

    @extend_schema(parameters=[RollupFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        model = self.model_for()
        query = RollupFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        since = timezone.now().date() - timedelta(days=query.validated_data["days"] - 1)
        return DailyRollup.objects.filter(model=model, day__gte=since).select_related("version", "device_type")
