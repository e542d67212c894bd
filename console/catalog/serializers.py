"""Shapes and validation of models, versions, compatibility rows and datasets."""

from __future__ import annotations

from rest_framework import serializers

from console.jobkinds.serializers import JobSerializer
from console.models import CompatibilityResult, Dataset, Model, ModelVersion, slug_validator


class ModelSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=63, validators=[slug_validator])
    version_count = serializers.IntegerField(read_only=True, default=0)
    latest_version = serializers.IntegerField(read_only=True, allow_null=True, default=None)  # no versions yet

    class Meta:
        model = Model
        fields = ["name", "description", "created_at", "version_count", "latest_version"]
        read_only_fields = ["created_at"]

    def validate_name(self, value):
        project = self.context["project"]
        if Model.objects.filter(project=project, name=value).exists():
            raise serializers.ValidationError(f"A model named {value!r} already exists in this project.")
        return value


class CompatibilitySerializer(serializers.ModelSerializer):
    device_type = serializers.CharField(source="device_type.slug")
    device_type_name = serializers.CharField(source="device_type.name")

    class Meta:
        model = CompatibilityResult
        fields = ["device_type", "device_type_name", "compatible", "reasons", "placement", "checked_at"]


class VersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    parent = serializers.IntegerField(
        source="parent.number", read_only=True, allow_null=True, default=None
    )  # an upload has none

    class Meta:
        model = ModelVersion
        fields = [
            "model",
            "number",
            "state",
            "error",
            "sha256",
            "size_bytes",
            "format",
            "original_filename",
            "parent",
            "transform",
            "transform_params",
            "created_at",
        ]


class VersionDetailSerializer(VersionSerializer):
    compatibility = CompatibilitySerializer(many=True, read_only=True)
    jobs = serializers.SerializerMethodField()

    class Meta(VersionSerializer.Meta):
        fields = VersionSerializer.Meta.fields + ["metadata", "metrics", "compatibility", "jobs"]

    def get_jobs(self, version) -> list[dict]:
        jobs = version.jobs.select_related("input_version__model", "output_version__model").order_by("-created_at")
        return JobSerializer(jobs[:20], many=True).data


class VersionUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="An ONNX model file (multipart/form-data).")


class DatasetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "format",
            "label_column",
            "sha256",
            "size_bytes",
            "rows",
            "has_labels",
            "summary",
            "created_at",
        ]


class DatasetUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="NPZ (arrays named after the model's inputs, plus 'labels') or CSV.")
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    label_column = serializers.CharField(
        required=False, default="label", max_length=200, help_text="CSV only: the column holding labels."
    )
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="Check against this version's inputs (default: latest ready)."
    )
