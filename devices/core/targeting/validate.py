"""Every problem with a rule, as sentences a person can act on."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from devices.core.bucketing import percent_to_basis_points
from devices.core.semver import parse_range
from devices.core.targeting.rules import (
    _REGION_RE,
    ATTRIBUTE_OPS,
    CONDITION_KEYS,
    MAX_ATTRIBUTE_CONDITIONS,
    MAX_LIST_VALUES,
    ORDER_OPS,
    Rule,
    RuleLike,
    Scalar,
    is_number,
)


def validate_rule(rule: RuleLike) -> list[str]:
    """Every problem with ``rule``, as messages for the API; empty when the rule is good."""
    if isinstance(rule, Rule):
        rule = rule.as_dict()
    if not isinstance(rule, Mapping):
        return ["rule must be an object"]
    errors: list[str] = []
    if rule.get("id") is None:
        errors.append("rule has no id")
    priority = rule.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        errors.append(f"priority {priority!r} must be an integer")
    conditions = rule.get("conditions") or {}
    if not isinstance(conditions, Mapping):
        return [*errors, "conditions must be an object"]
    unknown = sorted(set(conditions) - CONDITION_KEYS)
    if unknown:
        # A misspelt key would otherwise be ignored and the rule would match every device.
        errors.append(f"unknown condition {', '.join(unknown)}; known: {', '.join(sorted(CONDITION_KEYS))}")
    errors += _list_errors("device_types", conditions.get("device_types"), _device_type_error)
    errors += _list_errors("regions", conditions.get("regions"), _region_error)
    app_version = conditions.get("app_version") or ""
    if not isinstance(app_version, str):
        errors.append("app_version must be a version range string")
    elif app_version.strip():
        try:
            parse_range(app_version)
        except ValueError as exc:
            errors.append(str(exc))
    errors += _attribute_errors(conditions.get("attributes"))
    percentage = conditions.get("percentage")
    if percentage is not None:
        try:
            percent_to_basis_points(percentage)
        except ValueError as exc:
            errors.append(str(exc))
    bucket_by = conditions.get("bucket_by") or "device_id"
    if not isinstance(bucket_by, str) or not (
        bucket_by == "device_id" or (bucket_by.startswith("attr:") and len(bucket_by) > len("attr:"))
    ):
        errors.append(f"bucket_by {bucket_by!r} must be 'device_id' or 'attr:<attribute name>'")
    if not isinstance(conditions.get("salt") or "", str):
        errors.append("salt must be a string")
    return errors


def _list_errors(name: str, values: Any, item_error: Any) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list | tuple):
        return [f"{name} must be a list"]
    errors = [f"{name} has {len(values)} entries, at most {MAX_LIST_VALUES}"] if len(values) > MAX_LIST_VALUES else []
    return errors + [message for value in values if (message := item_error(value))]


def _device_type_error(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else f"device type {value!r} must be a non-empty string"


def _region_error(value: Any) -> str | None:
    if isinstance(value, str) and _REGION_RE.match(value):
        return None
    return f"region {value!r} is not a 2-letter ISO 3166 code"


def _attribute_errors(attributes: Any) -> list[str]:
    if attributes is None:
        return []
    if not isinstance(attributes, list | tuple):
        return ["attributes must be a list"]
    errors = []
    if len(attributes) > MAX_ATTRIBUTE_CONDITIONS:
        errors.append(f"too many attribute conditions ({len(attributes)}), at most {MAX_ATTRIBUTE_CONDITIONS}")
    for index, item in enumerate(attributes):
        if not isinstance(item, Mapping):
            errors.append(f"attribute condition {index + 1} must be an object with key, op and value")
            continue
        key, op, value = item.get("key"), item.get("op"), item.get("value")
        if not isinstance(key, str) or not key.strip():
            errors.append(f"attribute condition {index + 1} has no key")
            continue
        if op not in ATTRIBUTE_OPS:
            errors.append(f"unknown op {op!r} for attribute {key}; use one of {', '.join(ATTRIBUTE_OPS)}")
        elif op in ("eq", "ne") and not isinstance(value, Scalar):
            errors.append(f"attribute {key} {op} needs a string, number or boolean value")
        elif op in ("in", "not_in"):
            if not (isinstance(value, list | tuple) and value and all(isinstance(v, Scalar) for v in value)):
                errors.append(f"attribute {key} {op} needs a non-empty list of strings, numbers or booleans")
            elif len(value) > MAX_LIST_VALUES:
                errors.append(f"attribute {key} {op} lists {len(value)} values, at most {MAX_LIST_VALUES}")
        elif op in ORDER_OPS and not (is_number(value) and math.isfinite(value)):
            errors.append(f"attribute {key} {op} needs a number")
    return errors
