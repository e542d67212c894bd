"""Validation of targeting rules, default versions and previews (the page and the API share it)."""

from __future__ import annotations

from typing import Any, overload

from rest_framework import serializers

from console.models import ModelVersion
from devices.core.targeting.rules import Rule
from devices.core.targeting.validate import validate_rule
from devices.delivery.serializers import DeviceConfigSerializer
from devices.models import DeviceType, TargetingRule
from devices.rules import impact

CONFIRM_HELP = (
    "true to save although the version cannot run on some targeted device types; without it such a change is "
    "refused (400) with the warnings"
)
WARNINGS_HELP = (
    "in the answer to a change: each targeted device type that cannot run the version, how many enrolled devices "
    "that concerns and what they get instead"
)


class ImpactCheck:
    """Validation shared by the rule and default-version serializers: a change whose version some targeted device
    types cannot run is refused unless ``confirm`` is true; ``blocked`` keeps what was found for the answer."""

    blocked: list[impact.Blocked]

    def check_impact(self, version: ModelVersion | None, blocked: list[impact.Blocked], confirm: bool) -> None:
        self.blocked = blocked
        if blocked and not confirm:
            raise serializers.ValidationError(
                {
                    "confirm": [impact.confirm_message(version.number if version else 0, blocked)],
                    "warnings": impact.sentences(blocked),
                }
            )


class VersionRefField(serializers.IntegerField):
    """A version of the model in the serializer context, given by its number."""

    # The attribute it reads is the version, not the int IntegerField's stub ties to_representation to.
    def to_representation(self, value: ModelVersion) -> int:  # type: ignore[override]
        return value.number


@overload
def ready_version(model, number: int) -> ModelVersion: ...


@overload
def ready_version(model, number: None) -> None: ...


def ready_version(model, number: int | None) -> ModelVersion | None:
    """The version ``number`` of ``model`` if it may be served; raises a ValidationError saying why not."""
    if number is None:
        return None
    version = model.versions.filter(number=number).first()
    if version is None:
        raise serializers.ValidationError(f"{model.name} has no version {number}.")
    if not version.is_servable:
        raise serializers.ValidationError(
            f"version {number} is {version.state}; only a ready (checked) version may be served."
        )
    return version


class RuleSerializer(ImpactCheck, serializers.ModelSerializer):
    version = VersionRefField(min_value=1, help_text="number of a ready version of this model")
    conditions = serializers.JSONField(
        required=False,
        default=dict,
        help_text=(
            "device_types, regions, app_version (range), attributes [{key, op, value}], percentage, bucket_by, salt"
        ),
    )
    shadowed_by = serializers.SerializerMethodField()
    confirm = serializers.BooleanField(write_only=True, required=False, default=False, help_text=CONFIRM_HELP)
    warnings = serializers.SerializerMethodField(help_text=WARNINGS_HELP)

    class Meta:
        model = TargetingRule
        fields = [
            "id",
            "priority",
            "version",
            "conditions",
            "description",
            "shadowed_by",
            "created_at",
            "updated_at",
            "confirm",
            "warnings",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"priority": {"min_value": -1_000_000, "max_value": 1_000_000}}

    def get_shadowed_by(self, rule: TargetingRule) -> int | None:
        return self.context.get("shadowed", {}).get(rule.pk)

    def get_warnings(self, rule: TargetingRule) -> list[str]:
        # Only the answer to a change carries them; a list of rules computes none.
        return impact.sentences(getattr(self, "blocked", None) or []) if self.instance is rule else []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        confirm = attrs.pop("confirm", False)
        version = attrs.get("version", self.instance.version if self.instance else None)
        conditions = attrs.get("conditions", self.instance.conditions if self.instance else {})
        # Compared as the matcher reads them: the page writes empty lists where the API leaves keys out.
        unchanged = (
            self.instance is not None
            and version == self.instance.version
            and Rule.from_dict({"conditions": conditions}).conditions
            == Rule.from_dict({"conditions": self.instance.conditions}).conditions
        )
        if version is not None and not unchanged:
            self.check_impact(version, impact.for_target(self.context["model"], version, conditions), confirm)
        return attrs

    def validate_version(self, number: int) -> ModelVersion:
        return ready_version(self.context["model"], number)

    def validate_conditions(self, conditions: Any) -> dict:
        if not isinstance(conditions, dict):
            raise serializers.ValidationError("conditions must be an object.")
        conditions = dict(conditions)
        if conditions.get("regions"):
            conditions["regions"] = [str(r).upper() if isinstance(r, str) else r for r in conditions["regions"]]
        problems = validate_rule({"id": 0, "priority": 0, "conditions": conditions})
        if problems:
            raise serializers.ValidationError(problems)
        if isinstance(conditions.get("salt"), str) and len(conditions["salt"]) > 64:
            raise serializers.ValidationError("salt is at most 64 characters.")
        project = self.context["model"].project
        wanted = set(conditions.get("device_types") or [])
        known = set(DeviceType.objects.visible_to(project).filter(slug__in=wanted).values_list("slug", flat=True))
        if wanted - known:
            raise serializers.ValidationError(f"unknown device type {', '.join(sorted(wanted - known))}.")
        return conditions


class DefaultVersionSerializer(ImpactCheck, serializers.Serializer):
    version = serializers.IntegerField(min_value=1, allow_null=True, help_text="version number, or null for none")
    confirm = serializers.BooleanField(write_only=True, required=False, default=False, help_text=CONFIRM_HELP)
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True, help_text=WARNINGS_HELP)

    def validate_version(self, number: int | None) -> ModelVersion | None:
        return ready_version(self.context["model"], number)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        model, version = self.context["model"], attrs["version"]
        if version is not None and version.pk != model.default_version_id:
            self.check_impact(version, impact.for_default(model, version), attrs.pop("confirm", False))
        attrs.pop("confirm", None)
        return attrs


class PreviewSerializer(serializers.Serializer):
    """A sample device configuration for the rules preview."""

    device_id = serializers.CharField(max_length=128, required=False, default="preview-device")
    device_type = serializers.CharField(max_length=63)
    region = serializers.CharField(max_length=2, required=False, allow_blank=True, default="")
    app_version = serializers.CharField(max_length=64, required=False, default="0.0.0")
    attributes = serializers.JSONField(required=False, default=dict)

    validate_region = DeviceConfigSerializer.validate_region
    validate_app_version = DeviceConfigSerializer.validate_app_version
    validate_attributes = DeviceConfigSerializer.validate_attributes
