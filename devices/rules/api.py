"""Developer REST API for targeting rules, their preview and a model's default version."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from console.projects import roles
from console.projects.permissions import MODEL, ScopedMixin
from devices.delivery.cache import load_model_plans
from devices.fleet import services as fleet_services
from devices.models import TargetingRule
from devices.rules import impact, preview
from devices.rules import services as rules_services
from devices.rules.serializers import DefaultVersionSerializer, PreviewSerializer, RuleSerializer


class RuleViewMixin(ScopedMixin):
    scope = MODEL

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not self.schema_only:
            model = self.access.model
            context.update(model=model, shadowed=preview.shadowing(preview.rules_of(model)))
        return context


class RuleList(RuleViewMixin, generics.ListCreateAPIView):
    """A model's targeting rules in evaluation order (priority, then id); ``shadowed_by`` names a rule that
    hides this one for every device. A rule serving a version some targeted device types cannot run is refused
    (400, with ``warnings``) unless ``confirm`` is true; every change is refused (400) in a project that requires
    approval for changes that move devices."""

    serializer_class = RuleSerializer
    queryset = TargetingRule.objects.select_related("version")
    pagination_class = None

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = rules_services.create_rule(
            model=serializer.context["model"],
            version=data["version"],
            conditions=data.get("conditions", {}),
            priority=data.get("priority", 100),
            description=data.get("description", ""),
            user=self.request.user,
        )


class RuleDetail(RuleViewMixin, generics.RetrieveUpdateDestroyAPIView):
    serializer_class = RuleSerializer
    queryset = TargetingRule.objects.select_related("version")
    lookup_url_kwarg = "rule_id"

    def perform_update(self, serializer):
        serializer.instance = rules_services.update_rule(rule=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        rules_services.delete_rule(rule=instance)


class RulePreview(ScopedMixin, APIView):
    scope = MODEL
    required_role = {"POST": roles.VIEW}  # asks what would happen; changes nothing

    @extend_schema(
        request=PreviewSerializer,
        responses={200: dict},
        description=(
            "For a sample device configuration: each rule's verdict in evaluation order and what a check-in would "
            "get; and how many enrolled devices each rule matches (and wins) now."
        ),
    )
    def post(self, request, project, model):
        model_obj = self.access.model
        sample = PreviewSerializer(data=request.data)
        sample.is_valid(raise_exception=True)
        device_type = fleet_services.device_type_for(model_obj.project_id, sample.validated_data["device_type"])
        if device_type is None:
            raise ValidationError({"device_type": f"unknown device type {sample.validated_data['device_type']!r}."})
        plan = load_model_plans(model_obj.project_id, [model_obj.name])[model_obj.name]
        facts = preview.sample_facts(sample.validated_data, device_type)
        return Response(
            {
                **preview.explain(plan, facts),
                "shadowed": preview.shadowing(plan.rules),
                "counts": preview.count_matches(model_obj.project_id, plan).as_dict(),
            }
        )


class DefaultVersionView(ScopedMixin, APIView):
    scope = MODEL

    @extend_schema(
        request=DefaultVersionSerializer,
        responses={200: DefaultVersionSerializer},
        description="The version devices get when no rule matches (null: nothing). A version some of those devices' "
        "types cannot run is refused (400, with the warnings) unless confirm is true; refused (400) in a project "
        "that requires approval for changes that move devices: propose a rollout instead.",
    )
    def put(self, request, project, model):
        model_obj = self.access.model
        data = DefaultVersionSerializer(data=request.data, context={"model": model_obj})
        data.is_valid(raise_exception=True)
        version = data.validated_data["version"]
        rules_services.set_default_version(model=model_obj, version=version)
        warnings = impact.sentences(getattr(data, "blocked", []))
        return Response({"version": version.number if version else None, "warnings": warnings})

    @extend_schema(responses={200: DefaultVersionSerializer})
    def get(self, request, project, model):
        version = self.access.model.default_version
        return Response({"version": version.number if version else None, "warnings": []})
