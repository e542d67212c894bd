"""Validation of what devices send: enrollment, configuration and check-in bodies."""

from __future__ import annotations

import math
import re
from typing import Any

from rest_framework import serializers

from console.models import slug_validator
from devices.constants import (
    MAX_ATTRIBUTE_KEY_CHARS,
    MAX_ATTRIBUTE_VALUE_CHARS,
    MAX_ATTRIBUTES,
    MAX_CONFIG_BYTES,
    MAX_MODELS_PER_CHECKIN,
)
from devices.core.fingerprint import config_fingerprint
from devices.core.semver import parse_version
from devices.core.signing import canonical_json

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


ATTRIBUTE_KEY_RE = re.compile(rf"^[A-Za-z0-9_.:-]{{1,{MAX_ATTRIBUTE_KEY_CHARS}}}$")


REGION_RE = re.compile(r"^[A-Za-z]{2}$")


# django-stubs types RegexValidator.regex as str | Pattern (a str only on a subclass's class body); an instance's is
# always the compiled pattern.
MODEL_NAME_RE = re.compile(slug_validator.regex.pattern)  # type: ignore[union-attr]


SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


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
                f"attribute name {key[:80]!r} must be 1-{MAX_ATTRIBUTE_KEY_CHARS} letters, digits or _.:-"
            )
        if isinstance(item, str):
            if len(item) > MAX_ATTRIBUTE_VALUE_CHARS:
                raise serializers.ValidationError(
                    f"attribute {key} is {len(item)} characters long; at most {MAX_ATTRIBUTE_VALUE_CHARS}."
                )
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
    memory_mb = serializers.IntegerField(
        min_value=0, max_value=100_000_000, required=False, allow_null=True, default=None
    )
    region = serializers.CharField(max_length=2, allow_blank=True, trim_whitespace=False)
    app_version = serializers.CharField(max_length=64)
    attributes = serializers.JSONField(required=False, default=dict)

    def validate_region(self, value: str) -> str:
        if value and not REGION_RE.match(value):
            raise serializers.ValidationError(f'{value!r} is not an ISO 3166 alpha-2 code such as DE (or "").')
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
    device_id = serializers.RegexField(
        DEVICE_ID_RE,
        error_messages={"invalid": "device_id must be 1-128 letters, digits or ._:- (the agent sends a uuid4)."},
    )
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
    return {
        name: {"version_id": i["version_id"], "sha256": i["sha256"], "state": i["state"]} for name, i in value.items()
    }


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
        return {
            "fingerprint": fingerprint,
            "models": clean_models(data.get("models", [])),
            "installed": clean_installed(data.get("installed", {})),
        }
    except serializers.ValidationError:
        return None


class CheckinSerializer(serializers.Serializer):
    """The check-in body. Every check-in of every device runs through this, so the nested parts are plain
    JSON fields checked by the validate_* methods: DRF deep-copies declared fields per instance, and nested
    serializers cost more than the rest of the check-in together."""

    fingerprint = serializers.RegexField(
        SHA256_RE, error_messages={"invalid": "fingerprint must be the sha256 hex of canonical_json(config)."}
    )
    config = serializers.JSONField(required=False, help_text="as at enrollment; only when the fingerprint changed")
    # drf-stubs accept only a mapping as a JSONField default; any JSON value is allowed at run time.
    models = serializers.JSONField(
        required=False,
        default=list,  # type: ignore[arg-type]
        help_text="names of the models the device wants",
    )
    installed = serializers.JSONField(
        required=False,
        default=dict,
        help_text=('per model: {"version_id": int, "sha256": hex, "state": "running" | "failed"}'),
    )

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
            raise serializers.ValidationError(
                {
                    "fingerprint": (
                        f"does not match the config sent (config_fingerprint(config) is {config['fingerprint']})."
                    )
                }
            )
        return data
