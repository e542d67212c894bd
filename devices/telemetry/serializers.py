"""Validation of the events devices report, and the shapes of rollups."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from devices.constants import (
    MAX_EVENT_REASON_CHARS,
    MAX_EVENTS_PER_BATCH,
)
from devices.delivery.serializers import _is_number
from devices.models import DailyRollup, DeviceEvent

DEVICE_EVENT_TYPES = [
    DeviceEvent.Type.DOWNLOAD_STARTED,
    DeviceEvent.Type.DOWNLOAD_COMPLETED,
    DeviceEvent.Type.DOWNLOAD_FAILED,
    DeviceEvent.Type.INSTALL_SUCCEEDED,
    DeviceEvent.Type.INSTALL_FAILED,
    DeviceEvent.Type.ROLLBACK,
    DeviceEvent.Type.INFERENCE_STATS,
    DeviceEvent.Type.FEEDBACK,
]
MAX_LABEL_CHARS = 200
STATS_KEYS = ("count", "errors", "latency_ms_mean", "latency_ms_p50", "latency_ms_p90", "accuracy")


def label_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be a class label: an integer class index or a class name, nothing else."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        kind = "a boolean" if isinstance(value, bool) else f"a {type(value).__name__}"
        if value is None:
            kind = "missing"
        return f"stats.{name} is {kind}; it must be a class index (integer) or a class name (string)."
    if isinstance(value, str) and not 0 < len(value) <= MAX_LABEL_CHARS:
        return f"stats.{name} must be a class name of 1..{MAX_LABEL_CHARS} characters."
    return None


class EventSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=64)
    type = serializers.ChoiceField(choices=DEVICE_EVENT_TYPES)
    model = serializers.CharField(max_length=63, required=False, allow_blank=True, default="")
    version_id = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    at = serializers.DateTimeField(
        help_text=(
            "when it happened; outside 30 days before to 1 hour after the server's clock it is acknowledged but "
            "neither stored nor counted (devices.telemetry.events.in_window)"
        )
    )
    reason = serializers.CharField(max_length=MAX_EVENT_REASON_CHARS, required=False, allow_blank=True, default="")
    stats = serializers.JSONField(required=False, default=dict)

    def validate_stats(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError("stats must be an object.")
        count = value.get("count", 0)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 10**9:
            raise serializers.ValidationError("stats.count must be an integer 0..1e9.")
        errors = value.get("errors", 0)
        if isinstance(errors, bool) or not isinstance(errors, int) or not 0 <= errors <= count:
            raise serializers.ValidationError("stats.errors must be an integer 0..stats.count (runs that failed).")
        for name in ("latency_ms_mean", "latency_ms_p50", "latency_ms_p90"):
            if name in value and not (_is_number(value[name]) and value[name] >= 0):
                raise serializers.ValidationError(f"stats.{name} must be a number >= 0.")
        if "accuracy" in value and not (_is_number(value["accuracy"]) and 0 <= value["accuracy"] <= 1):
            raise serializers.ValidationError("stats.accuracy must be a number in 0..1.")
        kept = {key: value[key] for key in STATS_KEYS if key in value}
        # A feedback event's prediction and label, checked with its type in validate().
        kept.update({key: value[key] for key in ("prediction", "label") if key in value})
        return kept

    def validate(self, attrs: dict) -> dict:
        stats = attrs["stats"]
        if attrs["type"] != DeviceEvent.Type.FEEDBACK:
            stats.pop("prediction", None)
            stats.pop("label", None)
            return attrs
        if not attrs["model"] or attrs["version_id"] is None:
            raise serializers.ValidationError(
                {"version_id": "feedback names the model and the version that made the prediction."}
            )
        for name in ("prediction", "label"):
            problem = label_problem(name, stats.get(name))
            if problem:
                raise serializers.ValidationError({"stats": problem})
        if type(stats["prediction"]) is not type(stats["label"]):
            raise serializers.ValidationError(
                {
                    "stats": f"stats.label is a {type(stats['label']).__name__} but stats.prediction is a "
                    f"{type(stats['prediction']).__name__}: report both as class indexes or both as class names."
                }
            )
        attrs["stats"] = {"prediction": stats["prediction"], "label": stats["label"]}
        return attrs


class EventBatchSerializer(serializers.Serializer):
    # drf-stubs leave out max_length, which many=True hands to the ListSerializer it builds.
    events = EventSerializer(many=True, max_length=MAX_EVENTS_PER_BATCH, allow_empty=True)  # type: ignore[call-arg]


class RollupFilterSerializer(serializers.Serializer):
    days = serializers.IntegerField(
        min_value=1, max_value=90, required=False, default=14, help_text="how many days back, today included"
    )


class RollupSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number")
    device_type = serializers.CharField(source="device_type.slug")
    latency_p50_ms = serializers.FloatField(allow_null=True)
    latency_p90_ms = serializers.FloatField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True)

    class Meta:
        model = DailyRollup
        fields = [
            "day",
            "version",
            "device_type",
            "region",
            "download_started",
            "download_completed",
            "download_failed",
            "install_succeeded",
            "install_failed",
            "rollback",
            "inference_count",
            "latency_p50_ms",
            "latency_p90_ms",
            "accuracy",
        ]
