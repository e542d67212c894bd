from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from devices.models import DeviceType
from jobs.models import Job
from jobs.tooling.errors import TransformError
from jobs.tooling.transforms import TRANSFORMS

from . import roles
from .models import CompatibilityResult, Dataset, Membership, Model, ModelVersion, Project, slug_validator


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["slug", "name", "description", "created_at", "role"]
        read_only_fields = ["created_at", "role"]

    def get_role(self, project) -> str | None:
        return getattr(project, "my_role", None)


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]
        read_only_fields = ["id", "created_at"]


class MemberInputSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=roles.ROLE_CHOICES)

    def validate_username(self, value):
        user = get_user_model().objects.filter(username=value, is_active=True).first()
        if user is None:
            raise serializers.ValidationError(f"No active user named {value!r}.")
        return user


class ModelSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=63, validators=[slug_validator])
    version_count = serializers.IntegerField(read_only=True, default=0)
    latest_version = serializers.IntegerField(read_only=True, default=None)

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
        fields = ["device_type", "device_type_name", "compatible", "reasons", "checked_at"]


class JobSerializer(serializers.ModelSerializer):
    input_version = serializers.SerializerMethodField()
    output_version = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id", "kind", "params", "state", "progress", "log", "error", "attempts", "input_version",
            "output_version", "result", "created_at", "started_at", "finished_at",
        ]

    def _ref(self, version) -> dict | None:
        if version is None:
            return None
        return {"model": version.model.name, "number": version.number, "state": version.state}

    def get_input_version(self, job) -> dict | None:
        return self._ref(job.input_version)

    def get_output_version(self, job) -> dict | None:
        return self._ref(job.output_version)


class VersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    parent = serializers.IntegerField(source="parent.number", read_only=True, default=None)

    class Meta:
        model = ModelVersion
        fields = [
            "model", "number", "state", "error", "sha256", "size_bytes", "format", "original_filename",
            "parent", "transform", "transform_params", "created_at",
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


class DeviceTypeSerializer(serializers.ModelSerializer):
    builtin = serializers.SerializerMethodField()

    class Meta:
        model = DeviceType
        fields = [
            "slug", "name", "cpu_arch", "accelerator", "execution_provider", "memory_mb", "storage_mb",
            "max_model_mb", "runtime", "runtime_version", "runtime_build", "precisions", "notes", "builtin",
        ]

    def get_builtin(self, device_type) -> bool:
        return device_type.project_id is None

    def validate_precisions(self, value):
        from devices.models import PRECISIONS

        unknown = [p for p in value if p not in PRECISIONS]
        if not isinstance(value, list) or not value or unknown:
            raise serializers.ValidationError(f"Give a non-empty list drawn from {', '.join(PRECISIONS)}.")
        return value

    def validate_runtime_version(self, value):
        parts = value.split(".")
        if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
            raise serializers.ValidationError("Give the runtime release as major.minor, e.g. 1.17.")
        return value


class DatasetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = ["id", "name", "format", "label_column", "sha256", "size_bytes", "rows", "has_labels", "summary",
                  "created_at"]


class DatasetUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="NPZ (arrays named after the model's inputs, plus 'labels') or CSV.")
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    label_column = serializers.CharField(required=False, default="label", max_length=200,
                                         help_text="CSV only: the column holding labels.")
    version = serializers.IntegerField(required=False, min_value=1,
                                       help_text="Check against this version's inputs (default: latest ready).")


def _dataset_of(model, dataset_id):
    if dataset_id is None:
        return None
    dataset = model.datasets.filter(pk=dataset_id).first()
    if dataset is None:
        raise serializers.ValidationError({"dataset": f"No dataset {dataset_id} is attached to {model.name}."})
    return dataset


class OptimizeSerializer(serializers.Serializer):
    transform = serializers.ChoiceField(choices=sorted(TRANSFORMS))
    params = serializers.DictField(required=False, default=dict)
    dataset = serializers.IntegerField(required=False, allow_null=True, default=None)

    def validate(self, attrs):
        transform = TRANSFORMS[attrs["transform"]]
        params = dict(attrs["params"])
        if "dataset" in params:
            raise serializers.ValidationError({"params": "Pick a dataset with the 'dataset' field (its id)."})
        attrs["dataset"] = _dataset_of(self.context["model"], attrs.get("dataset"))
        if transform.needs_dataset:
            if attrs["dataset"] is None:
                raise serializers.ValidationError(
                    {"dataset": f"{transform.name} is calibrated on data: attach a dataset to the model and give "
                                "its id."})
            params["dataset"] = "placeholder"  # checked for shape only; the job passes the real file
        try:
            cleaned = transform.clean(params)
        except TransformError as exc:
            raise serializers.ValidationError({"params": str(exc)}) from exc
        cleaned.pop("dataset", None)
        attrs["params"] = cleaned
        return attrs


class OptimizeForDeviceSerializer(serializers.Serializer):
    device_type = serializers.SlugField()
    objective = serializers.ChoiceField(choices=["size", "latency"], default="size")
    accuracy_budget = serializers.FloatField(default=1.0, min_value=0.0, max_value=100.0,
                                             help_text="Largest accuracy drop accepted, in points.")
    dataset = serializers.IntegerField(required=False, allow_null=True, default=None)

    def validate(self, attrs):
        model = self.context["model"]
        attrs["dataset"] = _dataset_of(model, attrs.get("dataset"))
        exists = DeviceType.objects.visible_to(model.project).filter(slug=attrs["device_type"]).exists()
        if not exists:
            raise serializers.ValidationError({"device_type": f"No device type {attrs['device_type']!r} here."})
        return attrs


class TransformSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    needs_dataset = serializers.BooleanField()
    defaults = serializers.DictField()
