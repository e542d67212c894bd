"""Validation of experiments and of the results' filters; the rules themselves are in devices.experiments.services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from console.models import ModelVersion
from devices.experiments.metrics import METRICS
from devices.experiments.services import MAX_ARMS, ArmSpec, target_errors
from devices.models import DeviceType, Experiment, ExperimentArm


class ArmSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number", read_only=True)
    weight_percent = serializers.SerializerMethodField()
    control = serializers.BooleanField(source="is_control", read_only=True)

    class Meta:
        model = ExperimentArm
        fields = ["id", "name", "version", "weight_percent", "control", "stopped_at", "stop_reason"]
        read_only_fields = fields

    def get_weight_percent(self, arm: ExperimentArm) -> float:
        return arm.weight_bp / 100


class ArmInputSerializer(serializers.Serializer):
    version = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, required=False, help_text="the version's number"
    )
    version_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False, help_text="or its id")
    weight_percent = serializers.FloatField(min_value=0, max_value=100, help_text="share of the targeted devices")
    name = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    control = serializers.BooleanField(required=False, allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("version" in attrs) == ("version_id" in attrs):
            raise serializers.ValidationError("give an arm's version by number (version) or by id (version_id).")
        return attrs


class ExperimentSerializer(serializers.ModelSerializer):
    """An experiment as created (POST) and as read."""

    # drf-stubs leave out max_length, which many=True hands to the ListSerializer it builds.
    arms = ArmInputSerializer(  # type: ignore[call-arg]
        many=True, write_only=True, max_length=MAX_ARMS, help_text="two or more; the first is control"
    )
    planned_sample_size = serializers.IntegerField(
        min_value=1, max_value=10**9, required=False, allow_null=True, help_text="devices per arm you plan for"
    )
    arm_list = ArmSerializer(source="arms", many=True, read_only=True)
    traffic_percent = serializers.FloatField(min_value=0, max_value=100, help_text="share of the targeted devices")
    target = serializers.JSONField(
        required=False, default=dict, help_text="device_types, regions, app_version, attributes"
    )
    guardrail_metrics = serializers.ListField(
        child=serializers.ChoiceField(choices=list(METRICS)), required=False, default=list
    )
    primary_metric = serializers.ChoiceField(choices=list(METRICS))
    promoted_rollout = serializers.IntegerField(source="promoted_rollout_id", read_only=True, allow_null=True)

    class Meta:
        model = Experiment
        fields = [
            "id",
            "name",
            "description",
            "state",
            "target",
            "traffic_percent",
            "arms",
            "arm_list",
            "primary_metric",
            "guardrail_metrics",
            "planned_sample_size",
            "sequential",
            "created_at",
            "started_at",
            "stopped_at",
            "stop_reason",
            "promoted_rollout",
        ]
        read_only_fields = ["id", "state", "created_at", "started_at", "stopped_at", "stop_reason"]

    def validate_target(self, target: Any) -> dict:
        if not isinstance(target, dict):
            raise serializers.ValidationError("target must be an object.")
        target = dict(target)
        if isinstance(target.get("regions"), list):
            target["regions"] = [str(r).upper() if isinstance(r, str) else r for r in target["regions"]]
        problems = target_errors(target)
        if problems:
            raise serializers.ValidationError(problems)
        wanted = set(target.get("device_types") or [])
        known = set(
            DeviceType.objects.visible_to(self.context["model"].project_id)
            .filter(slug__in=wanted)
            .values_list("slug", flat=True)
        )
        if wanted - known:
            raise serializers.ValidationError(f"unknown device type {', '.join(sorted(wanted - known))}.")
        return target

    def validate_arms(self, arms: list[dict[str, Any]]) -> list[ArmSpec]:
        model = self.context["model"]
        specs = []
        for arm in arms:
            if "version" in arm:
                version = model.versions.filter(number=arm["version"]).first()
                if version is None:
                    raise serializers.ValidationError(f"{model.name} has no version {arm['version']}.")
            else:
                version = ModelVersion.objects.filter(pk=arm["version_id"], model__project_id=model.project_id).first()
                if version is None:
                    raise serializers.ValidationError(f"no version with id {arm['version_id']} in this project.")
            specs.append(ArmSpec(version, arm["weight_percent"], arm["name"], arm["control"]))
        return specs


class ResultsFilterSerializer(serializers.Serializer):
    device_type = serializers.SlugField(required=False, allow_blank=True, default="", help_text="one device type")
    region = serializers.RegexField(
        r"^[A-Za-z]{2}$", required=False, allow_blank=True, default="", help_text="one region (ISO 3166 alpha-2)"
    )


class PromoteSerializer(serializers.Serializer):
    arm = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="id of the winning arm")


class StopSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ComparisonSerializer(serializers.Serializer):
    diff = serializers.FloatField(allow_null=True)
    diff_low = serializers.FloatField(allow_null=True)
    diff_high = serializers.FloatField(allow_null=True)
    relative = serializers.FloatField(allow_null=True)
    relative_low = serializers.FloatField(allow_null=True)
    relative_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    p_adjusted = serializers.FloatField(allow_null=True)
    significant = serializers.BooleanField()
    sequential = serializers.BooleanField()


class MetricResultSerializer(serializers.Serializer):
    metric = serializers.CharField()
    units = serializers.FloatField()
    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    quantiles = serializers.DictField(child=serializers.FloatField(allow_null=True))
    versus_control = ComparisonSerializer(allow_null=True)


class ArmResultSerializer(serializers.Serializer):
    arm = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    control = serializers.BooleanField()
    devices = serializers.IntegerField()
    stopped_reason = serializers.CharField(allow_blank=True)
    metrics = MetricResultSerializer(many=True)


class SrmSerializer(serializers.Serializer):
    observed = serializers.ListField(child=serializers.FloatField())
    expected = serializers.ListField(child=serializers.FloatField())
    p_value = serializers.FloatField(allow_null=True)
    mismatch = serializers.BooleanField()


class ResultsSerializer(serializers.Serializer):
    experiment = serializers.IntegerField()
    state = serializers.CharField()
    filters = serializers.DictField(child=serializers.CharField())
    verdict = serializers.ListField(child=serializers.CharField())
    srm = SrmSerializer(allow_null=True)
    ineligible_devices = serializers.IntegerField()
    more_devices_per_arm = serializers.IntegerField(allow_null=True)
    power = serializers.CharField()
    arms = ArmResultSerializer(many=True)
    series = serializers.DictField(child=serializers.ListField(child=serializers.DictField()))
