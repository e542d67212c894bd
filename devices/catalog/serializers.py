"""Shapes and validation of device types."""

from __future__ import annotations

from rest_framework import serializers

from devices.catalog import services as device_type_services
from devices.models import PRECISIONS, DeviceType


class DeviceTypeSerializer(serializers.ModelSerializer):
    builtin = serializers.SerializerMethodField()

    class Meta:
        model = DeviceType
        fields = [
            "slug",
            "name",
            "cpu_arch",
            "accelerator",
            "execution_provider",
            "memory_mb",
            "storage_mb",
            "max_model_mb",
            "runtime",
            "runtime_version",
            "runtime_build",
            "precisions",
            "notes",
            "builtin",
        ]

    def get_builtin(self, device_type) -> bool:
        return device_type.project_id is None

    def validate_precisions(self, value):
        # The shape first: a number, an object or a nested list is refused with the same words, never iterated.
        if not isinstance(value, list) or not value or not all(isinstance(p, str) and p in PRECISIONS for p in value):
            raise serializers.ValidationError(f"Give a non-empty list drawn from {', '.join(PRECISIONS)}.")
        return value

    def validate_runtime_version(self, value):
        parts = value.split(".")
        if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
            raise serializers.ValidationError("Give the runtime release as major.minor, e.g. 1.17.")
        return value

    # The slug rules (a project's slug never a built-in's; built-ins unique; races) live in the services.
    def create(self, validated_data):
        return device_type_services.create_device_type(**validated_data)

    def update(self, instance, validated_data):
        return device_type_services.update_device_type(device_type=instance, **validated_data)
