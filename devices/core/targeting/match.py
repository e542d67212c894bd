"""Whether a rule matches a device configuration, and which rule wins."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from devices.core.bucketing import bucket, percent_to_basis_points
from devices.core.semver import parse_version
from devices.core.targeting.rules import (
    AttributeCondition,
    Explanation,
    Rule,
    RuleLike,
    as_rule,
    compare,
    listing,
    ordered_rules,
    parsed_range,
)


def rule_matches(rule: RuleLike, config: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether ``rule`` holds for ``config``, with a reason fit for a preview.

    A failing rule names the first condition that failed ("region DE not in [FR, IT]");
    a matching rule lists what held. A broken rule never matches ("invalid rule: ...").
    """
    r = as_rule(rule)
    c = r.conditions
    held: list[str] = []
    if c.device_types:
        device_type = config.get("device_type")
        listed = listing(c.device_types)
        if device_type not in c.device_types:
            return False, f"device type {device_type or '(none)'} not in {listed}"
        held.append(f"device type {device_type} in {listed}")
    if c.regions:
        region = str(config.get("region") or "").upper()
        listed = listing(c.regions)
        if region not in c.regions:
            return False, f"region {region or '(none)'} not in {listed}"
        held.append(f"region {region} in {listed}")
    if c.app_version:
        try:
            version_range = parsed_range(c.app_version)
        except ValueError as exc:
            return False, f"invalid rule: {exc}"
        app_version = config.get("app_version")
        try:
            version = parse_version(app_version)  # type: ignore[arg-type]
        except ValueError:
            return False, f"app version {app_version!r} is not a valid version"
        if not version_range.contains(version):
            return False, f"app version {app_version} not in {c.app_version}"
        held.append(f"app version {app_version} in {c.app_version}")
    attributes = config.get("attributes") or {}
    for condition in c.attributes:
        ok, reason = _attribute_holds(condition, attributes)
        if not ok:
            return False, reason
        held.append(reason)
    if c.percentage is not None:
        ok, reason = _in_percentage(r, config)
        if not ok:
            return False, reason
        held.append(reason)
    return True, "; ".join(held) if held else "no conditions: every device matches"


def resolve(rules: Iterable[RuleLike], config: Mapping[str, Any]) -> tuple[RuleLike | None, list[Explanation]]:
    """The first matching rule (the object passed in) and one explanation per rule, in evaluation order."""
    chosen: RuleLike | None = None
    chosen_id: Any = None
    explanations: list[Explanation] = []
    for rule in ordered_rules(rules):
        rule_id = as_rule(rule).id
        if chosen is not None:
            explanations.append(Explanation(rule_id, "not_reached", f"rule {chosen_id} matched first"))
            continue
        ok, reason = rule_matches(rule, config)
        if ok:
            chosen, chosen_id = rule, rule_id
            explanations.append(Explanation(rule_id, "chosen", reason))
        else:
            explanations.append(Explanation(rule_id, "no_match", reason))
    return chosen, explanations


def _attribute_holds(condition: AttributeCondition, attributes: Mapping[str, Any]) -> tuple[bool, str]:
    expected = list(condition.value) if isinstance(condition.value, tuple) else condition.value
    if condition.key not in attributes:
        return False, f"attribute {condition.key} is not set (needs {condition.op} {expected!r})"
    actual = attributes[condition.key]
    result = compare(condition.op, actual, expected)
    if result is None:
        return False, f"attribute {condition.key}={actual!r} cannot be compared with {condition.op} {expected!r}"
    verb = "passes" if result else "fails"
    return result, f"attribute {condition.key}={actual!r} {verb} {condition.op} {expected!r}"


def _salt(rule: Rule) -> str:
    return rule.conditions.salt or f"rule:{rule.id}"


def _bucket_key(rule: Rule, config: Mapping[str, Any]) -> str | None:
    bucket_by = rule.conditions.bucket_by
    if bucket_by == "device_id":
        device_id = config.get("device_id")
        return None if device_id is None else str(device_id)
    name = bucket_by.removeprefix("attr:")
    attributes = config.get("attributes") or {}
    if name not in attributes:
        return None
    value = attributes[name]
    # Strings as they are; other values as JSON so True and "True" land apart.
    return value if isinstance(value, str) else json.dumps(value)


def _in_percentage(rule: Rule, config: Mapping[str, Any]) -> tuple[bool, str]:
    percentage = rule.conditions.percentage
    try:
        threshold = percent_to_basis_points(percentage)  # type: ignore[arg-type]
    except ValueError as exc:
        return False, f"invalid rule: {exc}"
    key = _bucket_key(rule, config)
    if key is None:
        return False, f"{rule.conditions.bucket_by} is not set, so the device has no bucket"
    device_bucket = bucket(_salt(rule), key)
    if device_bucket < threshold:
        return True, f"bucket {device_bucket} is inside {percentage}% (below {threshold})"
    return False, f"bucket {device_bucket} is outside {percentage}% (needs below {threshold})"
