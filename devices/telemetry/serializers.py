"""Validation of the events devices report, and the shapes of rollups."""

from __future__ import annotations

import re
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
MAX_EVENT_ID_CHARS = 64  # DeviceEvent.event_id
MAX_MODEL_NAME_CHARS = 63
MAX_VERSION_ID = 2**63 - 1  # a bigint: a larger id is a 400, not a database error
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


def clean_stats(value: Any) -> dict:
    """An event's ``stats`` as stored: the known figures checked and kept, anything else dropped."""
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
    # A feedback event's prediction and label, checked with its type in check_event().
    kept.update({key: value[key] for key in ("prediction", "label") if key in value})
    return kept


def check_event(attrs: dict) -> dict:
    """The checks across an event's fields (a feedback event names its version, prediction and label)."""
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


class EventSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=MAX_EVENT_ID_CHARS)
    type = serializers.ChoiceField(choices=DEVICE_EVENT_TYPES)
    model = serializers.CharField(max_length=MAX_MODEL_NAME_CHARS, required=False, allow_blank=True, default="")
    version_id = serializers.IntegerField(
        min_value=1, max_value=MAX_VERSION_ID, required=False, allow_null=True, default=None
    )
    at = serializers.DateTimeField(
        help_text=(
            "when it happened; outside 30 days before to 1 hour after the server's clock it is acknowledged but "
            "neither stored nor counted (devices.telemetry.events.in_window)"
        )
    )
    reason = serializers.CharField(max_length=MAX_EVENT_REASON_CHARS, required=False, allow_blank=True, default="")
    stats = serializers.JSONField(required=False, default=dict)

    def validate_stats(self, value: Any) -> dict:
        return clean_stats(value)

    def validate(self, attrs: dict) -> dict:
        return check_event(attrs)


class EventBatchSerializer(serializers.Serializer):
    # drf-stubs leave out max_length, which many=True hands to the ListSerializer it builds.
    events = EventSerializer(many=True, max_length=MAX_EVENTS_PER_BATCH, allow_empty=True)  # type: ignore[call-arg]


# -- the usual batch, checked without DRF ---------------------------------------------------------------------

_TYPES = {str(choice): choice for choice in DEVICE_EVENT_TYPES}  # what ChoiceField gives back for each
_AT = serializers.DateTimeField()  # parses and makes aware exactly as EventSerializer's field
_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")  # refused by CharField's validators


def _plain_text(value: Any, max_chars: int, *, blank: bool) -> bool:
    """Whether CharField would keep ``value`` unchanged: a string already stripped, without NUL or surrogates."""
    return (
        isinstance(value, str)
        and (blank or value != "")
        and len(value) <= max_chars
        and value == value.strip()
        and not _UNSAFE_TEXT.search(value)
    )


def _common_event(data: Any) -> dict[str, Any] | None:
    if not isinstance(data, dict):
        return None
    event_id, event_type, at = data.get("id"), data.get("type"), data.get("at")
    model, version_id = data.get("model", ""), data.get("version_id")
    reason, stats = data.get("reason", ""), data.get("stats", {})
    if (
        not _plain_text(event_id, MAX_EVENT_ID_CHARS, blank=False)
        or not isinstance(event_type, str)
        or event_type not in _TYPES
        or not _plain_text(model, MAX_MODEL_NAME_CHARS, blank=True)
        or not (version_id is None or type(version_id) is int and 1 <= version_id <= MAX_VERSION_ID)
        or not isinstance(at, str)
        or not _plain_text(reason, MAX_EVENT_REASON_CHARS, blank=True)
    ):
        return None
    try:
        event = {
            "id": event_id,
            "type": _TYPES[event_type],
            "model": model,
            "version_id": version_id,
            "at": _AT.to_internal_value(at),
            "reason": reason,
            "stats": clean_stats(stats),
        }
        return check_event(event)
    except serializers.ValidationError:
        return None


def common_events(data: Any) -> list[dict[str, Any]] | None:
    """The events of the usual batch body, validated as EventBatchSerializer would, without DRF; or None.

    None means "anything unusual": a value DRF would coerce or refuse (a number for a string, text with
    surrounding spaces, an unknown type, a bad date, too many events, ...). The caller then runs
    EventBatchSerializer, so every 400 still comes from it: this only saves DRF's per-field work on the 100
    events of every batch, a fifth of the endpoint's time.
    """
    if not isinstance(data, dict):
        return None
    events = data.get("events")
    if type(events) is not list or len(events) > MAX_EVENTS_PER_BATCH:
        return None
    cleaned = []
    for item in events:
        event = _common_event(item)
        if event is None:
            return None
        cleaned.append(event)
    return cleaned


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
