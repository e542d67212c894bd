"""Rules that can never win because an earlier rule takes every device they would."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from devices.core.semver import range_covers
from devices.core.targeting.rules import (
    ORDER_OPS,
    AttributeCondition,
    Conditions,
    Rule,
    RuleLike,
    as_rule,
    compare,
    is_number,
    ordered_rules,
    parsed_range,
    same_value,
)
from devices.core.targeting.validate import validate_rule


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
    valid = [as_rule(rule) for rule in ordered_rules(rules) if not validate_rule(rule)]
    shadowed: dict[Any, Any] = {}
    for index, later in enumerate(valid):
        for earlier in valid[:index]:
            if _covers(earlier, later):
                shadowed[later.id] = earlier.id
                break
    return shadowed


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
            return range_covers(parsed_range(a.app_version), parsed_range("*"))
        if not range_covers(parsed_range(a.app_version), parsed_range(b.app_version)):
            return False
    return all(any(_implies(cb, ca) for cb in b.attributes) for ca in a.attributes)


def _implies(given: AttributeCondition, wanted: AttributeCondition) -> bool:
    """Whether ``given`` holding proves ``wanted`` holds (both need the attribute, so presence is given)."""
    if given.key != wanted.key:
        return False
    wanted_value = list(wanted.value) if isinstance(wanted.value, tuple) else wanted.value
    if given.op == "eq":
        return compare(wanted.op, given.value, wanted_value) is True
    if given.op == "in":
        return all(compare(wanted.op, value, wanted_value) is True for value in given.value)
    if given.op in ORDER_OPS and wanted.op in ORDER_OPS:
        return _bound_implies(given.op, given.value, wanted.op, wanted.value)
    if given.op in ("ne", "not_in") and wanted.op in ("ne", "not_in"):
        given_out = [given.value] if given.op == "ne" else list(given.value)
        wanted_out = [wanted.value] if wanted.op == "ne" else list(wanted.value)
        return all(any(same_value(w, g) for g in given_out) for w in wanted_out)
    return False


def _bound_implies(given_op: str, given: Any, wanted_op: str, wanted: Any) -> bool:
    if not (is_number(given) and is_number(wanted)):
        return False
    if given_op in ("gt", "gte") and wanted_op in ("gt", "gte"):
        # x > g proves x > w and x >= w when g >= w; x >= g needs g > w to prove x > w.
        return given > wanted if (given_op, wanted_op) == ("gte", "gt") else given >= wanted
    if given_op in ("lt", "lte") and wanted_op in ("lt", "lte"):
        return given < wanted if (given_op, wanted_op) == ("lte", "lt") else given <= wanted
    return False
