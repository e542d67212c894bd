"""Targeting rules: which rule (and so which version) a device configuration gets.

Pure functions over plain values; the Django side loads rules, calls these and
stores the answer. A device configuration is a dict::

    {"device_id": str, "device_type": str, "region": "DE", "app_version": "2.3.1",
     "attributes": {"tier": "pro", "ram_gb": 4, "beta": True}}

A rule is a ``Rule`` or the same shape as a dict::

    {"id": 7, "priority": 10, "version": <opaque>,
     "conditions": {"device_types": [...], "regions": [...], "app_version": ">=2.3,<3",
                    "attributes": [{"key": "tier", "op": "eq", "value": "pro"}],
                    "percentage": 25.0, "bucket_by": "device_id", "salt": "rule-7"}}

Empty lists, "" and ``None`` mean "any". Semantics worth knowing:

- Rules are tried by ``priority`` (lower first), then by id; the first match wins.
- Regions compare case-insensitively (stored upper case).
- Every attribute condition needs the attribute to be present, even ``ne`` and
  ``not_in``: an unknown value is never targeted by accident.
- ``eq``/``in`` compare by value within a kind: numbers with numbers (4 == 4.0),
  strings with strings, booleans with booleans only ("4" != 4, 1 != True).
  ``lt``/``lte``/``gt``/``gte`` need numbers on both sides.
- ``percentage`` buckets ``bucket_by`` (the device id or an attribute's value)
  with ``salt``; an empty salt means ``f"rule:{id}"`` so two rules at 10 % do
  not pick the same devices. See ``devices.bucketing``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from devices.bucketing import bucket, percent_to_basis_points
from devices.semver import VersionRange, parse_range, parse_version, range_covers

ATTRIBUTE_OPS = ("eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte")
ORDER_OPS = ("lt", "lte", "gt", "gte")
MAX_ATTRIBUTE_CONDITIONS = 20
MAX_LIST_VALUES = 200
CONDITION_KEYS = frozenset({"device_types", "regions", "app_version", "attributes", "percentage", "bucket_by", "salt"})
_REGION_RE = re.compile(r"^[A-Za-z]{2}$")

Scalar = str | int | float | bool


@dataclass(frozen=True)
class AttributeCondition:
    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class Conditions:
    device_types: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    app_version: str = ""
    attributes: tuple[AttributeCondition, ...] = ()
    percentage: float | None = None
    bucket_by: str = "device_id"
    salt: str = ""


@dataclass(frozen=True)
class Rule:
    id: Any
    priority: int = 0
    conditions: Conditions = field(default_factory=Conditions)
    version: Any = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """Lenient conversion (missing keys get defaults); run ``validate_rule`` on input you did not check."""
        raw = data.get("conditions") or {}
        attributes = tuple(
            AttributeCondition(
                str(item.get("key", "")),
                str(item.get("op", "")),
                tuple(item["value"]) if isinstance(item.get("value"), list) else item.get("value"),
            )
            for item in raw.get("attributes") or ()
            if isinstance(item, Mapping)
        )
        conditions = Conditions(
            device_types=tuple(raw.get("device_types") or ()),
            regions=tuple(str(region).upper() for region in raw.get("regions") or ()),
            app_version=raw.get("app_version") or "",
            attributes=attributes,
            percentage=raw.get("percentage"),
            bucket_by=raw.get("bucket_by") or "device_id",
            salt=raw.get("salt") or "",
        )
        return cls(
            id=data.get("id"), priority=data.get("priority", 0), conditions=conditions, version=data.get("version")
        )

    def as_dict(self) -> dict[str, Any]:
        c = self.conditions
        return {
            "id": self.id,
            "priority": self.priority,
            "version": self.version,
            "conditions": {
                "device_types": list(c.device_types),
                "regions": list(c.regions),
                "app_version": c.app_version,
                "attributes": [
                    {"key": a.key, "op": a.op, "value": list(a.value) if isinstance(a.value, tuple) else a.value}
                    for a in c.attributes
                ],
                "percentage": c.percentage,
                "bucket_by": c.bucket_by,
                "salt": c.salt,
            },
        }


RuleLike = Rule | Mapping[str, Any]


@dataclass(frozen=True)
class Explanation:
    """One line of a resolution preview: what happened to one rule and why."""

    rule_id: Any
    outcome: str  # "chosen", "no_match" or "not_reached" (an earlier rule won)
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "outcome": self.outcome, "reason": self.reason}


def rule_matches(rule: RuleLike, config: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether ``rule`` holds for ``config``, with a reason fit for a preview.

    A failing rule names the first condition that failed ("region DE not in [FR, IT]");
    a matching rule lists what held. A broken rule never matches ("invalid rule: ...").
    """
    r = _as_rule(rule)
    c = r.conditions
    held: list[str] = []
    if c.device_types:
        device_type = config.get("device_type")
        listed = _listing(c.device_types)
        if device_type not in c.device_types:
            return False, f"device type {device_type or '(none)'} not in {listed}"
        held.append(f"device type {device_type} in {listed}")
    if c.regions:
        region = str(config.get("region") or "").upper()
        listed = _listing(c.regions)
        if region not in c.regions:
            return False, f"region {region or '(none)'} not in {listed}"
        held.append(f"region {region} in {listed}")
    if c.app_version:
        try:
            version_range = _parsed_range(c.app_version)
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


def ordered_rules(rules: Iterable[RuleLike]) -> list[RuleLike]:
    """Rules in evaluation order: priority (lower first), then id (numbers before text)."""
    return sorted(rules, key=lambda rule: _order_key(_as_rule(rule)))


def resolve(rules: Iterable[RuleLike], config: Mapping[str, Any]) -> tuple[RuleLike | None, list[Explanation]]:
    """The first matching rule (the object passed in) and one explanation per rule, in evaluation order."""
    chosen: RuleLike | None = None
    chosen_id: Any = None
    explanations: list[Explanation] = []
    for rule in ordered_rules(rules):
        rule_id = _as_rule(rule).id
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


def shadowed_rules(rules: Iterable[RuleLike]) -> dict[Any, Any]:
    """``{rule id: id of the earlier rule that hides it}`` for rules that can never be chosen.

    Rule B is shadowed by an earlier rule A when A takes every device (no
    percentage, or 100 % by device id) and A's conditions provably hold
    wherever B's hold: A's device types and regions are "any" or include all
    of B's; A's version range is "any" or covers B's range interval by
    interval; each of A's attribute conditions follows from one of B's on the
    same key. The check is conservative: a reported rule is certainly
    shadowed, but some shadowed rules (e.g. covered by two earlier rules
    together) are not reported. Invalid rules are left out.
    """
    valid = [_as_rule(rule) for rule in ordered_rules(rules) if not validate_rule(rule)]
    shadowed: dict[Any, Any] = {}
    for index, later in enumerate(valid):
        for earlier in valid[:index]:
            if _covers(earlier, later):
                shadowed[later.id] = earlier.id
                break
    return shadowed


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


# -- evaluation helpers


def _as_rule(rule: RuleLike) -> Rule:
    return rule if isinstance(rule, Rule) else Rule.from_dict(rule)


def _order_key(rule: Rule) -> tuple:
    rule_id = rule.id
    id_key = (0, rule_id, "") if isinstance(rule_id, int) and not isinstance(rule_id, bool) else (1, 0, str(rule_id))
    priority = rule.priority if isinstance(rule.priority, int | float) else math.inf
    return (priority, id_key)


@lru_cache(maxsize=1024)
def _parsed_range(text: str) -> VersionRange:
    # Resolution runs for every device on every check-in; ranges repeat, so parse each once.
    return parse_range(text)


def _listing(values: Sequence[Any]) -> str:
    return "[" + ", ".join(str(value) for value in values) + "]"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if _is_number(actual) and _is_number(expected):
        return actual == expected
    return isinstance(actual, str) and isinstance(expected, str) and actual == expected


def _compare(op: str, actual: Any, expected: Any) -> bool | None:
    """The condition's truth for ``actual``, or ``None`` when the kinds cannot be compared."""
    if op == "eq":
        return _same(actual, expected)
    if op == "ne":
        return not _same(actual, expected)
    if op in ("in", "not_in"):
        if not isinstance(expected, list | tuple):
            return None
        found = any(_same(actual, item) for item in expected)
        return found if op == "in" else not found
    if op in ORDER_OPS:
        if not (_is_number(actual) and _is_number(expected)):
            return None
        return {"lt": actual < expected, "lte": actual <= expected, "gt": actual > expected, "gte": actual >= expected}[
            op
        ]
    return None


def _attribute_holds(condition: AttributeCondition, attributes: Mapping[str, Any]) -> tuple[bool, str]:
    expected = list(condition.value) if isinstance(condition.value, tuple) else condition.value
    if condition.key not in attributes:
        return False, f"attribute {condition.key} is not set (needs {condition.op} {expected!r})"
    actual = attributes[condition.key]
    result = _compare(condition.op, actual, expected)
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


# -- shadowing helpers


def _takes_everyone(conditions: Conditions) -> bool:
    if conditions.percentage is None:
        return True
    # 100 % by device id holds for every device (each has an id); by attribute it needs the attribute.
    return conditions.bucket_by == "device_id" and conditions.percentage >= 100


def _covers(earlier: Rule, later: Rule) -> bool:
    a, b = earlier.conditions, later.conditions
    if not _takes_everyone(a):
        return False
    if a.device_types and not (b.device_types and set(b.device_types) <= set(a.device_types)):
        return False
    if a.regions and not (b.regions and set(b.regions) <= set(a.regions)):
        return False
    if a.app_version.strip():
        if not b.app_version.strip():
            return range_covers(_parsed_range(a.app_version), _parsed_range("*"))
        if not range_covers(_parsed_range(a.app_version), _parsed_range(b.app_version)):
            return False
    return all(any(_implies(cb, ca) for cb in b.attributes) for ca in a.attributes)


def _implies(given: AttributeCondition, wanted: AttributeCondition) -> bool:
    """Whether ``given`` holding proves ``wanted`` holds (both need the attribute, so presence is given)."""
    if given.key != wanted.key:
        return False
    wanted_value = list(wanted.value) if isinstance(wanted.value, tuple) else wanted.value
    if given.op == "eq":
        return _compare(wanted.op, given.value, wanted_value) is True
    if given.op == "in":
        return all(_compare(wanted.op, value, wanted_value) is True for value in given.value)
    if given.op in ORDER_OPS and wanted.op in ORDER_OPS:
        return _bound_implies(given.op, given.value, wanted.op, wanted.value)
    if given.op in ("ne", "not_in") and wanted.op in ("ne", "not_in"):
        given_out = [given.value] if given.op == "ne" else list(given.value)
        wanted_out = [wanted.value] if wanted.op == "ne" else list(wanted.value)
        return all(any(_same(w, g) for g in given_out) for w in wanted_out)
    return False


def _bound_implies(given_op: str, given: Any, wanted_op: str, wanted: Any) -> bool:
    if not (_is_number(given) and _is_number(wanted)):
        return False
    if given_op in ("gt", "gte") and wanted_op in ("gt", "gte"):
        # x > g proves x > w and x >= w when g >= w; x >= g needs g > w to prove x > w.
        return given > wanted if (given_op, wanted_op) == ("gte", "gt") else given >= wanted
    if given_op in ("lt", "lte") and wanted_op in ("lt", "lte"):
        return given < wanted if (given_op, wanted_op) == ("lte", "lt") else given <= wanted
    return False


# -- validation helpers


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
        elif op in ("in", "not_in") and not (
            isinstance(value, list | tuple) and value and all(isinstance(v, Scalar) for v in value)
        ):
            errors.append(f"attribute {key} {op} needs a non-empty list of strings, numbers or booleans")
        elif op in ("in", "not_in") and len(value) > MAX_LIST_VALUES:
            errors.append(f"attribute {key} {op} lists {len(value)} values, at most {MAX_LIST_VALUES}")
        elif op in ORDER_OPS and not (_is_number(value) and math.isfinite(value)):
            errors.append(f"attribute {key} {op} needs a number")
    return errors
