"""Shapes and filters of the fleet's developer API and pages."""

from __future__ import annotations

from rest_framework import serializers

from devices.models import Device, DeviceEvent, DeviceModelState, FleetSettings


class FleetSettingsSerializer(serializers.ModelSerializer):
    has_enrollment_key = serializers.SerializerMethodField()

    class Meta:
        model = FleetSettings
        fields = [
            "has_enrollment_key",
            "enrollment_key_prefix",
            "enrollment_key_rotated_at",
            "public_key",
            "checkin_interval_s",
        ]
        read_only_fields = ["enrollment_key_prefix", "enrollment_key_rotated_at", "public_key"]

    def get_has_enrollment_key(self, fleet: FleetSettings) -> bool:
        return bool(fleet.enrollment_key_hash)


class EnrollmentKeySerializer(serializers.Serializer):
    enrollment_key = serializers.CharField(help_text="Shown once; only its hash is stored.")
    enrollment_key_prefix = serializers.CharField()


class DeviceStateSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    desired_version = serializers.IntegerField(source="desired_version.number", default=None)
    installed_version = serializers.IntegerField(source="installed_version.number", default=None)
    fell_back = serializers.BooleanField(read_only=True)
    up_to_date = serializers.BooleanField(read_only=True)

    class Meta:
        model = DeviceModelState
        fields = [
            "model",
            "desired_version",
            "status",
            "resolution",
            "reason",
            "installed_version",
            "installed_sha256",
            "installed_state",
            "fell_back",
            "up_to_date",
            "resolved_at",
        ]


class DeviceSerializer(serializers.ModelSerializer):
    device_type = serializers.CharField(source="device_type.slug", read_only=True)
    models = DeviceStateSerializer(source="model_states", many=True, read_only=True)
    revoked = serializers.BooleanField(source="is_revoked", read_only=True)

    class Meta:
        model = Device
        fields = [
            "device_id",
            "device_type",
            "region",
            "app_version",
            "runtime",
            "runtime_version",
            "os",
            "cpu_arch",
            "accelerator",
            "memory_mb",
            "attributes",
            "fingerprint",
            "checkin_interval_s",
            "enrolled_at",
            "last_seen_at",
            "revoked",
            "revoked_at",
            "models",
        ]
        read_only_fields = [name for name in fields if name != "checkin_interval_s"]
        extra_kwargs = {"checkin_interval_s": {"min_value": 1, "max_value": 86400}}


class DeviceEventSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", default=None, allow_null=True)
    version = serializers.IntegerField(source="version.number", default=None, allow_null=True)

    class Meta:
        model = DeviceEvent
        fields = ["event_id", "type", "model", "version", "reported_version_id", "at", "received_at", "reason", "stats"]


LAST_SEEN_CHOICES = [
    ("1h", "within the last hour"),
    ("24h", "within the last day"),
    ("7d", "within 7 days"),
    ("stale", "not for 7 days or never"),
]


class FleetFilterSerializer(serializers.Serializer):
    """The fleet list's query string (page and API)."""

    device_type = serializers.CharField(max_length=63, required=False, allow_blank=True)
    region = serializers.CharField(max_length=2, required=False, allow_blank=True)
    app_version = serializers.CharField(max_length=64, required=False, allow_blank=True)
    model = serializers.CharField(max_length=63, required=False, allow_blank=True)
    version = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, help_text="installed version number of `model`"
    )
    last_seen = serializers.ChoiceField(choices=LAST_SEEN_CHOICES, required=False, allow_blank=True)
    delivery = serializers.ChoiceField(
        choices=[("behind", "desired differs from installed"), ("fell_back", "fell back for compatibility")],
        required=False,
        allow_blank=True,
    )
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
