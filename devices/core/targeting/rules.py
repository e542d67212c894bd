"""Targeting rules as plain values: conditions, their order, and the helpers the matcher, validator and shadow finder share."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeGuard, TypeVar

from devices.core.semver import VersionRange, parse_range

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

# Sorting keeps each rule as given (a Rule stays a Rule, a dict stays a dict).
AnyRule = TypeVar("AnyRule", bound=RuleLike)


@dataclass(frozen=True)
class Explanation:
    """One line of a resolution preview: what happened to one rule and why."""

    rule_id: Any
    outcome: str  # "chosen", "no_match" or "not_reached" (an earlier rule won)
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "outcome": self.outcome, "reason": self.reason}


def ordered_rules(rules: Iterable[AnyRule]) -> list[AnyRule]:
    """Rules in evaluation order: priority (lower first), then id (numbers before text)."""
    return sorted(rules, key=lambda rule: _order_key(as_rule(rule)))


def as_rule(rule: RuleLike) -> Rule:
    return rule if isinstance(rule, Rule) else Rule.from_dict(rule)


def _order_key(rule: Rule) -> tuple:
    rule_id = rule.id
    id_key = (0, rule_id, "") if isinstance(rule_id, int) and not isinstance(rule_id, bool) else (1, 0, str(rule_id))
    priority = rule.priority if isinstance(rule.priority, int | float) else math.inf
    return (priority, id_key)


@lru_cache(maxsize=1024)
def parsed_range(text: str) -> VersionRange:
    # Resolution runs for every device on every check-in; ranges repeat, so parse each once.
    return parse_range(text)


def listing(values: Sequence[Any]) -> str:
    return "[" + ", ".join(str(value) for value in values) + "]"


def is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same_value(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if is_number(actual) and is_number(expected):
        return actual == expected
    return isinstance(actual, str) and isinstance(expected, str) and actual == expected


def compare(op: str, actual: Any, expected: Any) -> bool | None:
    """The condition's truth for ``actual``, or ``None`` when the kinds cannot be compared."""
    if op == "eq":
        return same_value(actual, expected)
    if op == "ne":
        return not same_value(actual, expected)
    if op in ("in", "not_in"):
        if not isinstance(expected, list | tuple):
            return None
        found = any(same_value(actual, item) for item in expected)
        return found if op == "in" else not found
    if op in ORDER_OPS:
        if not (is_number(actual) and is_number(expected)):
            return None
        return {"lt": actual < expected, "lte": actual <= expected, "gt": actual > expected, "gte": actual >= expected}[
            op
        ]
    return None
