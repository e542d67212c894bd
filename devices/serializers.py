"""Validation of what devices and developers send, and the shapes the APIs answer with.

Every 4xx message about a request body comes from here.
"""

from __future__ import annotations

import math
import re
from typing import Any

from rest_framework import serializers

from console.models import ModelVersion, slug_validator
from devices.fingerprint import config_fingerprint
from devices.semver import parse_version
from devices.signing import canonical_json
from devices.targeting import validate_rule

from .constants import (
    MAX_ATTRIBUTE_KEY_CHARS,
    MAX_ATTRIBUTE_VALUE_CHARS,
    MAX_ATTRIBUTES,
    MAX_CONFIG_BYTES,
    MAX_EVENT_REASON_CHARS,
    MAX_EVENTS_PER_BATCH,
    MAX_MODELS_PER_CHECKIN,
)
from .models import DailyRollup, Device, DeviceEvent, DeviceModelState, DeviceType, FleetSettings, TargetingRule

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
ATTRIBUTE_KEY_RE = re.compile(rf"^[A-Za-z0-9_.:-]{{1,{MAX_ATTRIBUTE_KEY_CHARS}}}$")
REGION_RE = re.compile(r"^[A-Za-z]{2}$")
MODEL_NAME_RE = re.compile(slug_validator.regex.pattern)
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
DEVICE_EVENT_TYPES = [
    DeviceEvent.Type.DOWNLOAD_STARTED, DeviceEvent.Type.DOWNLOAD_COMPLETED, DeviceEvent.Type.DOWNLOAD_FAILED,
    DeviceEvent.Type.INSTALL_SUCCEEDED, DeviceEvent.Type.INSTALL_FAILED, DeviceEvent.Type.ROLLBACK,
    DeviceEvent.Type.INFERENCE_STATS,
]


# -- device-facing ------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_attributes(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise serializers.ValidationError("attributes must be an object of name -> string, number or boolean.")
    if len(value) > MAX_ATTRIBUTES:
        raise serializers.ValidationError(f"{len(value)} attributes; at most {MAX_ATTRIBUTES} are allowed.")
    for key, item in value.items():
        if not ATTRIBUTE_KEY_RE.match(key):
            raise serializers.ValidationError(
                f"attribute name {key[:80]!r} must be 1-{MAX_ATTRIBUTE_KEY_CHARS} letters, digits or _.:-")
        if isinstance(item, str):
            if len(item) > MAX_ATTRIBUTE_VALUE_CHARS:
                raise serializers.ValidationError(
                    f"attribute {key} is {len(item)} characters long; at most {MAX_ATTRIBUTE_VALUE_CHARS}.")
        elif not (isinstance(item, bool) or _is_number(item)):
            raise serializers.ValidationError(f"attribute {key} must be a string, a finite number or a boolean.")
    return value


class DeviceConfigSerializer(serializers.Serializer):
    """A device configuration as PROTOCOL.md names it. Unknown keys are kept (newer agents may add some)."""

    device_type = serializers.CharField(max_length=63)
    runtime = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    runtime_version = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    os = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    cpu_arch = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    accelerator = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    memory_mb = serializers.IntegerField(min_value=0, max_value=100_000_000, required=False, allow_null=True,
                                         default=None)
    region = serializers.CharField(max_length=2, allow_blank=True, trim_whitespace=False)
    app_version = serializers.CharField(max_length=64)
    attributes = serializers.JSONField(required=False, default=dict)

    def validate_region(self, value: str) -> str:
        if value and not REGION_RE.match(value):
            raise serializers.ValidationError(f"{value!r} is not an ISO 3166 alpha-2 code such as DE (or \"\").")
        return value.upper()

    def validate_app_version(self, value: str) -> str:
        try:
            parse_version(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value

    def validate_attributes(self, value: Any) -> dict[str, Any]:
        return validate_attributes(value)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"config": "config must be an object."})
        try:
            size = len(canonical_json(data))
        except (TypeError, ValueError) as exc:
            raise serializers.ValidationError({"config": f"config is not plain JSON ({exc})."}) from exc
        if size > MAX_CONFIG_BYTES:
            raise serializers.ValidationError({"config": f"config is {size} bytes; at most {MAX_CONFIG_BYTES}."})
        values = super().to_internal_value(data)
        # The fingerprint covers the configuration exactly as sent, so keep the raw dict next to the parsed one.
        values["raw"] = data
        values["fingerprint"] = config_fingerprint(data)
        return values


class EnrollSerializer(serializers.Serializer):
    enrollment_key = serializers.CharField(max_length=200)
    device_id = serializers.RegexField(DEVICE_ID_RE, error_messages={
        "invalid": "device_id must be 1-128 letters, digits or ._:- (the agent sends a uuid4)."})
    config = DeviceConfigSerializer()


INSTALLED_STATES = ("running", "failed")


def clean_models(value: Any) -> list[str]:
    """The check-in's ``models``, without duplicates (shared by CheckinSerializer and ``common_checkin``)."""
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise serializers.ValidationError("models must be a list of model names.")
    if len(value) > MAX_MODELS_PER_CHECKIN:
        raise serializers.ValidationError(f"{len(value)} models; at most {MAX_MODELS_PER_CHECKIN} per check-in.")
    bad = [name for name in value if not MODEL_NAME_RE.match(name)]
    if bad:
        raise serializers.ValidationError(f"{bad[0][:80]!r} is not a model name (lowercase letters, digits, -).")
    return list(dict.fromkeys(value))


def clean_installed(value: Any) -> dict[str, dict[str, Any]]:
    """The check-in's ``installed`` report (shared by CheckinSerializer and ``common_checkin``)."""
    if not isinstance(value, dict):
        raise serializers.ValidationError("installed must be an object: model name -> install.")
    if len(value) > MAX_MODELS_PER_CHECKIN:
        raise serializers.ValidationError(f"at most {MAX_MODELS_PER_CHECKIN} installed models.")
    for name, install in value.items():
        if not isinstance(install, dict):
            raise serializers.ValidationError(f"{name}: give version_id, sha256 and state.")
        version_id, sha256, state = install.get("version_id"), install.get("sha256"), install.get("state")
        if isinstance(version_id, bool) or not isinstance(version_id, int) or version_id < 1:
            raise serializers.ValidationError(f"{name}.version_id must be a positive integer.")
        if not isinstance(sha256, str) or not SHA256_RE.match(sha256):
            raise serializers.ValidationError(f"{name}.sha256 must be 64 lowercase hex digits.")
        if state not in INSTALLED_STATES:
            raise serializers.ValidationError(f"{name}.state must be running or failed.")
    return {name: {"version_id": i["version_id"], "sha256": i["sha256"], "state": i["state"]}
            for name, i in value.items()}


def common_checkin(data: Any) -> dict[str, Any] | None:
    """The usual check-in body (fingerprint, models, installed; no config) validated without DRF, or None.

    None means "anything unusual": a config, a missing or malformed field. The caller then runs
    CheckinSerializer, so every 400 message still comes from one place; this only saves DRF's per-request
    field set-up on the body every device sends every interval.
    """
    if not isinstance(data, dict) or "config" in data:
        return None
    fingerprint = data.get("fingerprint")
    if not isinstance(fingerprint, str) or not SHA256_RE.fullmatch(fingerprint):
        return None
    try:
        return {"fingerprint": fingerprint, "models": clean_models(data.get("models", [])),
                "installed": clean_installed(data.get("installed", {}))}
    except serializers.ValidationError:
        return None


class CheckinSerializer(serializers.Serializer):
    """The check-in body. Every check-in of every device runs through this, so the nested parts are plain
    JSON fields checked by the validate_* methods: DRF deep-copies declared fields per instance, and nested
    serializers cost more than the rest of the check-in together."""

    fingerprint = serializers.RegexField(SHA256_RE, error_messages={
        "invalid": "fingerprint must be the sha256 hex of canonical_json(config)."})
    config = serializers.JSONField(required=False, help_text="as at enrollment; only when the fingerprint changed")
    models = serializers.JSONField(required=False, default=list, help_text="names of the models the device wants")
    installed = serializers.JSONField(required=False, default=dict, help_text=(
        'per model: {"version_id": int, "sha256": hex, "state": "running" | "failed"}'))

    def validate_config(self, value: Any) -> dict[str, Any]:
        config = DeviceConfigSerializer(data=value)
        config.is_valid(raise_exception=True)
        return config.validated_data

    def validate_models(self, value: Any) -> list[str]:
        return clean_models(value)

    def validate_installed(self, value: Any) -> dict[str, dict[str, Any]]:
        return clean_installed(value)

    def validate(self, data: dict) -> dict:
        config = data.get("config")
        if config is not None and config["fingerprint"] != data["fingerprint"]:
            raise serializers.ValidationError({"fingerprint": (
                f"does not match the config sent (config_fingerprint(config) is {config['fingerprint']}).")})
        return data


class EventSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=64)
    type = serializers.ChoiceField(choices=DEVICE_EVENT_TYPES)
    model = serializers.CharField(max_length=63, required=False, allow_blank=True, default="")
    version_id = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    at = serializers.DateTimeField()
    reason = serializers.CharField(max_length=MAX_EVENT_REASON_CHARS, required=False, allow_blank=True, default="")
    stats = serializers.JSONField(required=False, default=dict)

    def validate_stats(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError("stats must be an object.")
        count = value.get("count", 0)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 10**9:
            raise serializers.ValidationError("stats.count must be an integer 0..1e9.")
        for name in ("latency_ms_p50", "latency_ms_p90"):
            if name in value and not (_is_number(value[name]) and value[name] >= 0):
                raise serializers.ValidationError(f"stats.{name} must be a number >= 0.")
        if "accuracy" in value and not (_is_number(value["accuracy"]) and 0 <= value["accuracy"] <= 1):
            raise serializers.ValidationError("stats.accuracy must be a number in 0..1.")
        return {key: value[key] for key in ("count", "latency_ms_p50", "latency_ms_p90", "accuracy") if key in value}


class EventBatchSerializer(serializers.Serializer):
    events = EventSerializer(many=True, max_length=MAX_EVENTS_PER_BATCH, allow_empty=True)


# -- developer-facing ---------------------------------------------------------------------------------------


class FleetSettingsSerializer(serializers.ModelSerializer):
    has_enrollment_key = serializers.SerializerMethodField()

    class Meta:
        model = FleetSettings
        fields = ["has_enrollment_key", "enrollment_key_prefix", "enrollment_key_rotated_at", "public_key",
                  "checkin_interval_s"]
        read_only_fields = ["enrollment_key_prefix", "enrollment_key_rotated_at", "public_key"]

    def get_has_enrollment_key(self, fleet: FleetSettings) -> bool:
        return bool(fleet.enrollment_key_hash)


class EnrollmentKeySerializer(serializers.Serializer):
    enrollment_key = serializers.CharField(help_text="Shown once; only its hash is stored.")
    enrollment_key_prefix = serializers.CharField()


class VersionRefField(serializers.IntegerField):
    """A version of the model in the serializer context, given by its number."""

    def to_representation(self, value: ModelVersion) -> int:
        return value.number


def ready_version(model, number: int | None) -> ModelVersion | None:
    """The version ``number`` of ``model`` if it may be served; raises a ValidationError saying why not."""
    if number is None:
        return None
    version = model.versions.filter(number=number).first()
    if version is None:
        raise serializers.ValidationError(f"{model.name} has no version {number}.")
    if version.state != ModelVersion.State.READY:
        raise serializers.ValidationError(
            f"version {number} is {version.state}; only a ready (checked) version may be served.")
    return version


class RuleSerializer(serializers.ModelSerializer):
    version = VersionRefField(min_value=1, help_text="number of a ready version of this model")
    conditions = serializers.JSONField(required=False, default=dict, help_text=(
        "device_types, regions, app_version (range), attributes [{key, op, value}], percentage, bucket_by, salt"))
    shadowed_by = serializers.SerializerMethodField()

    class Meta:
        model = TargetingRule
        fields = ["id", "priority", "version", "conditions", "description", "shadowed_by", "created_at",
                  "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"priority": {"min_value": -1_000_000, "max_value": 1_000_000}}

    def get_shadowed_by(self, rule: TargetingRule) -> int | None:
        return self.context.get("shadowed", {}).get(rule.pk)

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
        known = set(DeviceType.objects.visible_to(project).filter(slug__in=wanted)
                    .values_list("slug", flat=True))
        if wanted - known:
            raise serializers.ValidationError(f"unknown device type {', '.join(sorted(wanted - known))}.")
        return conditions


class DefaultVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, allow_null=True, help_text="version number, or null for none")

    def validate_version(self, number: int | None) -> ModelVersion | None:
        return ready_version(self.context["model"], number)


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


class DeviceStateSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    desired_version = serializers.IntegerField(source="desired_version.number", default=None)
    installed_version = serializers.IntegerField(source="installed_version.number", default=None)
    fell_back = serializers.BooleanField(read_only=True)
    up_to_date = serializers.BooleanField(read_only=True)

    class Meta:
        model = DeviceModelState
        fields = ["model", "desired_version", "status", "resolution", "reason", "installed_version",
                  "installed_sha256", "installed_state", "fell_back", "up_to_date", "resolved_at"]


class DeviceSerializer(serializers.ModelSerializer):
    device_type = serializers.CharField(source="device_type.slug", read_only=True)
    models = DeviceStateSerializer(source="model_states", many=True, read_only=True)
    revoked = serializers.BooleanField(source="is_revoked", read_only=True)

    class Meta:
        model = Device
        fields = ["device_id", "device_type", "region", "app_version", "runtime", "runtime_version", "os",
                  "cpu_arch", "accelerator", "memory_mb", "attributes", "fingerprint", "checkin_interval_s",
                  "enrolled_at", "last_seen_at", "revoked", "revoked_at", "models"]
        read_only_fields = [name for name in fields if name != "checkin_interval_s"]
        extra_kwargs = {"checkin_interval_s": {"min_value": 1, "max_value": 86400}}


class DeviceEventSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", default=None)
    version = serializers.IntegerField(source="version.number", default=None)

    class Meta:
        model = DeviceEvent
        fields = ["event_id", "type", "model", "version", "reported_version_id", "at", "received_at", "reason",
                  "stats"]


LAST_SEEN_CHOICES = [("1h", "within the last hour"), ("24h", "within the last day"), ("7d", "within 7 days"),
                     ("stale", "not for 7 days or never")]


class FleetFilterSerializer(serializers.Serializer):
    """The fleet list's query string (page and API)."""

    device_type = serializers.CharField(max_length=63, required=False, allow_blank=True)
    region = serializers.CharField(max_length=2, required=False, allow_blank=True)
    app_version = serializers.CharField(max_length=64, required=False, allow_blank=True)
    model = serializers.CharField(max_length=63, required=False, allow_blank=True)
    version = serializers.IntegerField(min_value=1, required=False, allow_null=True,
                                       help_text="installed version number of `model`")
    last_seen = serializers.ChoiceField(choices=LAST_SEEN_CHOICES, required=False, allow_blank=True)
    delivery = serializers.ChoiceField(
        choices=[("behind", "desired differs from installed"), ("fell_back", "fell back for compatibility")],
        required=False, allow_blank=True)
    revoked = serializers.BooleanField(required=False, allow_null=True, default=None)
    q = serializers.CharField(max_length=128, required=False, allow_blank=True, help_text="device id contains")

    def validate_region(self, value: str) -> str:
        return value.upper()

    def validate(self, data: dict) -> dict:
        if data.get("version") and not data.get("model"):
            raise serializers.ValidationError({"version": "Name the model too (model=<name>&version=<number>)."})
        if data.get("delivery") and not data.get("model"):
            raise serializers.ValidationError({"delivery": "Name the model too (model=<name>&delivery=...)."})
        return data


class RollupFilterSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=90, required=False, default=14,
                                    help_text="how many days back, today included")


class RollupSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number")
    device_type = serializers.CharField(source="device_type.slug")
    latency_p50_ms = serializers.FloatField(allow_null=True)
    latency_p90_ms = serializers.FloatField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True)

    class Meta:
        model = DailyRollup
        fields = ["day", "version", "device_type", "region", "download_started", "download_completed",
                  "download_failed", "install_succeeded", "install_failed", "rollback", "inference_count",
                  "latency_p50_ms", "latency_p90_ms", "accuracy"]
