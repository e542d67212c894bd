"""Shapes and validation of models, versions, compatibility rows and datasets."""

from __future__ import annotations

from rest_framework import serializers

from console.catalog.samples import latest_checked_version, recorded_input_specs
from console.jobkinds.serializers import JobSerializer
from console.models import CompatibilityResult, Dataset, Model, ModelVersion, slug_validator
from jobs.tooling.inputs import typical_dims_problems


class ModelSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=63, validators=[slug_validator])
    version_count = serializers.IntegerField(read_only=True, default=0)
    latest_version = serializers.IntegerField(read_only=True, allow_null=True, default=None)  # no versions yet
    sample_dataset = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The id of the dataset used as the model's sample inputs."
    )
    typical_dims = serializers.DictField(
        child=serializers.IntegerField(), read_only=True, help_text="Typical size per dynamic dimension."
    )

    class Meta:
        model = Model
        fields = [
            "name",
            "description",
            "created_at",
            "version_count",
            "latest_version",
            "sample_dataset",
            "typical_dims",
        ]
        read_only_fields = ["created_at"]

    def validate_name(self, value):
        project = self.context["project"]
        if Model.objects.filter(project=project, name=value).exists():
            raise serializers.ValidationError(f"A model named {value!r} already exists in this project.")
        return value


class ModelInputsSerializer(serializers.Serializer):
    """PATCH of a model's representative inputs; each field is optional, null or {} clears it."""

    sample_dataset = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=2**63 - 1,
        help_text="The id of one of this model's datasets whose inputs checks and measurements run on; null: none.",
    )
    typical_dims = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='Typical size per dynamic dimension: {"height": 640, "width": 640}, or {"<input>:<axis>": 16000} '
        "for an unnamed one; checked against the newest ready version's inputs. {} or null: none.",
    )

    def validate_sample_dataset(self, value):
        if value is None:
            return None
        model = self.context["model"]
        # Looked up among this model's datasets only: another model's or project's id reads as unknown.
        dataset = model.datasets.filter(pk=value).first()
        if dataset is None:
            raise serializers.ValidationError(
                f"{model.name} has no dataset {value}; attach one on the model (its datasets are listed at "
                "datasets/) and give its id"
            )
        return dataset

    def validate_typical_dims(self, value):
        if value is None or value == {}:
            return {}
        if not isinstance(value, dict):
            raise serializers.ValidationError(
                'typical sizes must be an object of dimension -> size, e.g. {"height": 640, "width": 640}'
            )
        model = self.context["model"]
        version = latest_checked_version(model)
        if version is None:
            raise serializers.ValidationError(
                f"{model.name} has no checked version yet: typical sizes are checked against the inputs of its "
                "newest ready version, so upload one first"
            )
        problems = typical_dims_problems(recorded_input_specs(version), value)
        if problems:
            raise serializers.ValidationError([f"v{version.number}: {problem}" for problem in problems])
        return dict(value)


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
    unverified = serializers.BooleanField(
        source="is_unverified", read_only=True, help_text="A lossy variant verified on generated inputs only."
    )

    class Meta:
        model = ModelVersion
        fields = [
            "model",
            "number",
            "state",
            "unverified",
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
