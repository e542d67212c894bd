"""Shapes of jobs, and validation of optimization requests."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from devices.models import DeviceType
from jobs.models import Job
from jobs.tooling import fidelity
from jobs.tooling.errors import TransformError
from jobs.tooling.transforms import USER_TRANSFORMS


class OutlookSerializer(serializers.Serializer):
    waiting_for_worker = serializers.BooleanField()
    silent_since = serializers.DateTimeField(allow_null=True)
    retry_at = serializers.DateTimeField()
    gives_up = serializers.BooleanField()
    sentence = serializers.CharField()


class JobSerializer(serializers.ModelSerializer):
    input_version = serializers.SerializerMethodField()
    output_version = serializers.SerializerMethodField()
    outlook = serializers.SerializerMethodField(
        help_text="Null while the job moves or once it ended; else why it is not moving and when the reaper acts."
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "params",
            "state",
            "progress",
            "log",
            "error",
            "attempts",
            "input_version",
            "output_version",
            "result",
            "outlook",
            "created_at",
            "started_at",
            "finished_at",
        ]

    @extend_schema_field(OutlookSerializer(allow_null=True))
    def get_outlook(self, job) -> dict | None:
        outlook = job.outlook
        return None if outlook is None else OutlookSerializer(outlook).data

    def _ref(self, version) -> dict | None:
        if version is None:
            return None
        return {"model": version.model.name, "number": version.number, "state": version.state}

    def get_input_version(self, job) -> dict | None:
        return self._ref(job.input_version)

    def get_output_version(self, job) -> dict | None:
        return self._ref(job.output_version)


def _dataset_of(model, dataset_id):
    if dataset_id is None:
        return None
    dataset = model.datasets.filter(pk=dataset_id).first()
    if dataset is None:
        raise serializers.ValidationError({"dataset": f"No dataset {dataset_id} is attached to {model.name}."})
    return dataset


def _fidelity_metrics_field():
    return serializers.DictField(
        child=serializers.ChoiceField(choices=sorted(fidelity.METRICS)),
        required=False,
        default=dict,
        help_text='The fidelity metric to judge each output by, by output name (e.g. {"boxes": "iou"}); '
        "outputs not named get one inferred from their shape and values.",
    )


class OptimizeSerializer(serializers.Serializer):
    transform = serializers.ChoiceField(choices=sorted(USER_TRANSFORMS))
    params = serializers.DictField(required=False, default=dict)
    dataset = serializers.IntegerField(required=False, allow_null=True, default=None)
    fidelity_metrics = _fidelity_metrics_field()

    def validate(self, attrs):
        transform = USER_TRANSFORMS[attrs["transform"]]
        params = dict(attrs["params"])
        if "dataset" in params:
            raise serializers.ValidationError({"params": "Pick a dataset with the 'dataset' field (its id)."})
        attrs["dataset"] = _dataset_of(self.context["model"], attrs.get("dataset"))
        if transform.needs_dataset:
            if attrs["dataset"] is None:
                raise serializers.ValidationError(
                    {
                        "dataset": f"{transform.name} is calibrated on data: attach a dataset to the model and give "
                        "its id."
                    }
                )
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
    accuracy_budget = serializers.FloatField(
        default=1.0,
        min_value=0.0,
        max_value=100.0,
        help_text="Largest loss accepted, in points of the model's fidelity metric: accuracy points with a labeled "
        "dataset, else e.g. 1 = at least 99% top-1 or decision agreement, at most 1% of pixels flipped or 1% "
        "relative L2 error.",
    )
    dataset = serializers.IntegerField(required=False, allow_null=True, default=None)
    fidelity_metrics = _fidelity_metrics_field()
    accept_unverified = serializers.BooleanField(
        default=False,
        help_text="Allow a lossy variant (quantized, pruned, factorized, fp16) verified only on generated inputs to "
        "be chosen; the version it makes is marked unverified everywhere it appears.",
    )

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
