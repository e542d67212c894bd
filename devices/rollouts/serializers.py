"""Validation of rollouts and of approvers' decisions; the plan rules themselves are devices.core.rollout_plan's."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from console.models import ModelVersion
from devices.core import rollout_plan
from devices.models import DeviceType, Rollout, RolloutApproval
from devices.rules.serializers import VersionRefField


class RolloutApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username", read_only=True, allow_null=True, default=None)
    is_current = serializers.BooleanField(read_only=True, help_text="false once the plan changed: the decision is void")

    class Meta:
        model = RolloutApproval
        fields = ["id", "approver", "decision", "comment", "is_current", "created_at"]
        read_only_fields = fields


class RolloutSerializer(serializers.ModelSerializer):
    version = VersionRefField(min_value=1, help_text="number of the version to roll out (it must be ready to submit)")
    previous_version = VersionRefField(
        read_only=True, allow_null=True, help_text="what the target ran before; a rollback returns to it"
    )
    target = serializers.JSONField(
        required=False,
        default=dict,
        help_text="device_types, regions, app_version (range), attributes [{key, op, value}]",
    )
    stages = serializers.JSONField(
        help_text="[{percent, dwell_minutes}, ...]: strictly increasing, the last 100, dwell 1..43200 minutes"
    )
    proposer = serializers.CharField(source="proposer.username", read_only=True, allow_null=True, default=None)
    fingerprint = serializers.CharField(
        read_only=True, help_text="hash of version, target, stages and thresholds; send it back when approving"
    )
    approvals = RolloutApprovalSerializer(many=True, read_only=True)

    class Meta:
        model = Rollout
        fields = [
            "id",
            "state",
            "version",
            "previous_version",
            "target",
            "stages",
            *rollout_plan.THRESHOLD_DEFAULTS,
            "current_stage",
            "proposer",
            "fingerprint",
            "approvals",
            "created_at",
            "updated_at",
            "submitted_at",
            "started_at",
            "stage_started_at",
            "ended_at",
            "halt_reason",
            "offered_percent",
            "retry_generation",
            "stage_history",
        ]
        read_only_fields = [
            "id",
            "state",
            "current_stage",
            "created_at",
            "updated_at",
            "submitted_at",
            "started_at",
            "stage_started_at",
            "ended_at",
            "halt_reason",
            "offered_percent",
            "retry_generation",
            "stage_history",
        ]
        extra_kwargs = {
            "offered_percent": {"help_text": "share of the target offered now (below the stage's under a rate cap)"},
            "retry_generation": {"help_text": "how many times the failed devices were let retry"},
            "stage_history": {
                "help_text": "per stage opened: stage, percent, started_at, ended_at, outcome (advanced, completed, "
                "halted, paused, rolled_back), reason, figures (downloads and installs reported), health (each "
                "threshold's value, limit, judged, crossed, sentence)"
            },
        }

    def validate_version(self, number: int) -> ModelVersion:
        model = self.context["model"]
        version = model.versions.filter(number=number).first()
        if version is None:
            raise serializers.ValidationError(f"{model.name} has no version {number}.")
        return version

    def validate_target(self, target: Any) -> dict:
        if not isinstance(target, dict):
            raise serializers.ValidationError("target must be an object.")
        target = dict(target)
        if target.get("regions") and isinstance(target["regions"], list):
            target["regions"] = [str(r).upper() if isinstance(r, str) else r for r in target["regions"]]
        problems = rollout_plan.target_errors(target)
        if problems:
            raise serializers.ValidationError(problems)
        wanted = set(target.get("device_types") or [])
        project = self.context["model"].project
        known = set(DeviceType.objects.visible_to(project).filter(slug__in=wanted).values_list("slug", flat=True))
        if wanted - known:
            raise serializers.ValidationError(f"unknown device type {', '.join(sorted(wanted - known))}.")
        return target

    def validate_stages(self, stages: Any) -> list:
        problems = rollout_plan.stage_errors(stages)
        if problems:
            raise serializers.ValidationError(problems)
        return list(stages)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        current = self.instance.thresholds if self.instance is not None else rollout_plan.THRESHOLD_DEFAULTS
        thresholds = {name: attrs.get(name, current[name]) for name in rollout_plan.THRESHOLD_DEFAULTS}
        problems = rollout_plan.threshold_errors(thresholds)
        if problems:
            raise serializers.ValidationError({"thresholds": problems})
        return attrs


class DecisionSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    fingerprint = serializers.CharField(
        required=False,
        max_length=64,
        help_text="the rollout's fingerprint as you reviewed it; refused (409) if the plan changed since",
    )
