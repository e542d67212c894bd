from __future__ import annotations

from typing import Any

import pytest

from devices.core.bucketing import bucket
from devices.core.targeting.match import resolve, rule_matches
from devices.core.targeting.rules import MAX_ATTRIBUTE_CONDITIONS, Rule, ordered_rules
from devices.core.targeting.shadow import shadowed_rules
from devices.core.targeting.validate import validate_rule

CONFIG = {
    "device_id": "device-1",
    "device_type": "kiosk-x86",
    "region": "DE",
    "app_version": "2.3.1",
    "attributes": {"tier": "pro", "ram_gb": 4, "beta": True},
}


def rule(rule_id: Any, priority: int = 10, version: Any = None, **conditions: Any) -> dict[str, Any]:
    return {"id": rule_id, "priority": priority, "conditions": conditions, "version": version or f"v-{rule_id}"}


def attr(key: str, op: str, value: Any) -> dict[str, Any]:
    return {"key": key, "op": op, "value": value}


def test_rule_without_conditions__matches_every_device() -> None:
    assert rule_matches(rule(1), CONFIG) == (True, "no conditions: every device matches")


def test_rule_matches__says_which_condition_failed() -> None:
    assert rule_matches(rule(1, regions=["FR", "IT"]), CONFIG) == (False, "region DE not in [FR, IT]")
    assert rule_matches(rule(1, device_types=["phone"]), CONFIG) == (False, "device type kiosk-x86 not in [phone]")
    assert rule_matches(rule(1, app_version=">=3"), CONFIG) == (False, "app version 2.3.1 not in >=3")
    ok, reason = rule_matches(rule(1, attributes=[attr("tier", "eq", "free")]), CONFIG)
    assert (ok, reason) == (False, "attribute tier='pro' fails eq 'free'")


def test_rule_matches__lists_what_held_when_it_matches() -> None:
    ok, reason = rule_matches(
        rule(1, device_types=["kiosk-x86"], regions=["de"], app_version="~2.3", attributes=[attr("ram_gb", "gte", 4)]),
        CONFIG,
    )
    assert ok
    assert reason == (
        "device type kiosk-x86 in [kiosk-x86]; region DE in [DE]; app version 2.3.1 in ~2.3; "
        "attribute ram_gb=4 passes gte 4"
    )


def test_region__compares_case_insensitively() -> None:
    assert rule_matches(rule(1, regions=["de"]), dict(CONFIG, region="de"))[0]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (attr("tier", "eq", "pro"), True),
        (attr("tier", "ne", "pro"), False),
        (attr("tier", "in", ["pro", "team"]), True),
        (attr("tier", "not_in", ["pro", "team"]), False),
        (attr("ram_gb", "lt", 8), True),
        (attr("ram_gb", "lte", 4), True),
        (attr("ram_gb", "gt", 4), False),
        (attr("ram_gb", "gte", 4.0), True),
        (attr("ram_gb", "eq", 4.0), True),  # numbers compare by value
        (attr("ram_gb", "eq", "4"), False),  # but never with text
        (attr("beta", "eq", True), True),
        (attr("beta", "eq", 1), False),  # nor booleans with numbers
        (attr("tier", "gt", 1), False),  # ordering needs numbers on both sides
    ],
)
def test_attribute_ops__compare_within_a_kind(condition: dict, expected: bool) -> None:
    assert rule_matches(rule(1, attributes=[condition]), CONFIG)[0] is expected


def test_missing_attribute__fails_every_op_even_ne() -> None:
    ok, reason = rule_matches(rule(1, attributes=[attr("store", "ne", "eu")]), CONFIG)
    assert (ok, reason) == (False, "attribute store is not set (needs ne 'eu')")


def test_invalid_app_version_on_the_device__does_not_match() -> None:
    ok, reason = rule_matches(rule(1, app_version=">=2"), dict(CONFIG, app_version="banana"))
    assert (ok, reason) == (False, "app version 'banana' is not a valid version")


def test_percentage__uses_the_rule_salt_and_the_device_bucket() -> None:
    device_bucket = bucket("salt-1", "device-1")
    just_in = rule(1, percentage=(device_bucket + 1) / 100, salt="salt-1")
    just_out = rule(1, percentage=device_bucket / 100, salt="salt-1")
    assert rule_matches(just_in, CONFIG)[0]
    assert not rule_matches(just_out, CONFIG)[0]


def test_percentage__without_a_salt__buckets_by_rule_id() -> None:
    device_bucket = bucket("rule:42", "device-1")
    assert rule_matches(rule(42, percentage=(device_bucket + 1) / 100), CONFIG)[0]
    assert not rule_matches(rule(42, percentage=device_bucket / 100), CONFIG)[0]


def test_percentage__can_bucket_by_an_attribute() -> None:
    conditions = {"percentage": 50, "bucket_by": "attr:tier", "salt": "s"}
    expected = bucket("s", "pro") < 5000
    assert rule_matches(rule(1, **conditions), CONFIG)[0] is expected
    ok, reason = rule_matches(rule(1, **dict(conditions, bucket_by="attr:store")), CONFIG)
    assert (ok, reason) == (False, "attr:store is not set, so the device has no bucket")


def test_percentage__is_sticky_as_it_grows() -> None:
    devices = [dict(CONFIG, device_id=f"d{i}") for i in range(500)]
    inside_10 = {d["device_id"] for d in devices if rule_matches(rule(1, percentage=10), d)[0]}
    inside_20 = {d["device_id"] for d in devices if rule_matches(rule(1, percentage=20), d)[0]}
    assert inside_10 < inside_20


def test_resolve__takes_the_first_match_by_priority_then_id() -> None:
    rules = [
        rule(3, priority=5, regions=["DE"]),
        rule(2, priority=5, regions=["DE"]),
        rule(1, priority=1, regions=["FR"]),
        rule(9, priority=99),
    ]

    chosen, explanations = resolve(rules, CONFIG)

    assert chosen is rules[1]  # the object passed in, "version" and all
    assert [(e.rule_id, e.outcome) for e in explanations] == [
        (1, "no_match"),
        (2, "chosen"),
        (3, "not_reached"),
        (9, "not_reached"),
    ]
    assert explanations[0].reason == "region DE not in [FR]"
    assert explanations[2].as_dict() == {"rule_id": 3, "outcome": "not_reached", "reason": "rule 2 matched first"}


def test_resolve__without_a_match__returns_none() -> None:
    chosen, explanations = resolve([rule(1, regions=["FR"])], CONFIG)
    assert chosen is None
    assert explanations[0].outcome == "no_match"


def test_resolve__accepts_rule_dataclasses() -> None:
    typed = Rule.from_dict(rule(1, regions=["de"]))
    chosen, _ = resolve([typed], CONFIG)
    assert chosen is typed
    assert typed.conditions.regions == ("DE",)
    assert Rule.from_dict(typed.as_dict()) == typed


def test_ordered_rules__sorts_by_priority_then_numeric_ids_before_text_ids() -> None:
    rules = [rule("b"), rule(10), rule(9), rule("a"), rule("z", priority=1)]
    assert [r["id"] for r in ordered_rules(rules)] == ["z", 9, 10, "a", "b"]


def test_broken_rule__never_matches_and_says_why() -> None:
    ok, reason = rule_matches(rule(1, app_version=">>2"), CONFIG)
    assert not ok and reason.startswith("invalid rule: invalid version range")


# -- shadowing


def shadowed(*rules: dict) -> dict:
    return shadowed_rules(list(rules))


def test_shadowed__catch_all_hides_everything_after_it() -> None:
    assert shadowed(rule(1, priority=1), rule(2, regions=["DE"]), rule(3, percentage=5)) == {2: 1, 3: 1}


def test_shadowed__a_percentage_rule_hides_nothing() -> None:
    assert shadowed(rule(1, priority=1, percentage=50), rule(2)) == {}


def test_shadowed__100_percent_by_device_id_counts_as_everyone() -> None:
    assert shadowed(rule(1, priority=1, percentage=100), rule(2, regions=["DE"])) == {2: 1}


def test_shadowed__needs_superset_lists() -> None:
    assert shadowed(rule(1, priority=1, regions=["DE", "FR"]), rule(2, regions=["DE"])) == {2: 1}
    assert shadowed(rule(1, priority=1, regions=["DE"]), rule(2, regions=["DE", "FR"])) == {}
    assert shadowed(rule(1, priority=1, regions=["DE"]), rule(2)) == {}
    assert shadowed(rule(1, priority=1, device_types=["a", "b"]), rule(2, device_types=["b"])) == {2: 1}


def test_shadowed__compares_version_ranges() -> None:
    assert shadowed(rule(1, priority=1, app_version=">=2"), rule(2, app_version="~2.3")) == {2: 1}
    assert shadowed(rule(1, priority=1, app_version="~2.3"), rule(2, app_version=">=2.3")) == {}
    assert shadowed(rule(1, priority=1, app_version="~2.3"), rule(2)) == {}
    assert shadowed(rule(1, priority=1, app_version="*"), rule(2)) == {2: 1}


@pytest.mark.parametrize(
    ("earlier", "later", "hidden"),
    [
        (attr("tier", "in", ["pro", "team"]), attr("tier", "eq", "pro"), True),
        (attr("tier", "eq", "pro"), attr("tier", "in", ["pro", "team"]), False),
        (attr("tier", "ne", "free"), attr("tier", "eq", "pro"), True),
        (attr("tier", "ne", "free"), attr("tier", "not_in", ["free", "trial"]), True),
        (attr("tier", "not_in", ["free", "trial"]), attr("tier", "ne", "free"), False),
        (attr("ram_gb", "gte", 4), attr("ram_gb", "gt", 4), True),
        (attr("ram_gb", "gt", 4), attr("ram_gb", "gte", 4), False),
        (attr("ram_gb", "gt", 2), attr("ram_gb", "gte", 4), True),
        (attr("ram_gb", "lt", 8), attr("ram_gb", "lte", 4), True),
        (attr("ram_gb", "lt", 8), attr("ram_gb", "eq", 4), True),
        (attr("ram_gb", "lt", 8), attr("ram_gb", "in", [2, 4, 9]), False),
        (attr("tier", "eq", "pro"), attr("region_code", "eq", "pro"), False),
    ],
)
def test_shadowed__proves_attribute_conditions_one_by_one(earlier: dict, later: dict, hidden: bool) -> None:
    result = shadowed(rule(1, priority=1, attributes=[earlier]), rule(2, attributes=[later]))
    assert (result == {2: 1}) is hidden


def test_shadowed__earlier_rule_with_more_conditions_hides_nothing() -> None:
    assert shadowed(rule(1, priority=1, regions=["DE"], attributes=[attr("tier", "eq", "pro")]), rule(2)) == {}


def test_shadowed__reports_the_first_hiding_rule_and_skips_invalid_rules() -> None:
    rules = [rule(1, priority=1, regions=["DE"]), rule(2, priority=2), rule(3, regions=["DE"], app_version=">>")]
    assert shadowed(*rules, rule(4, regions=["DE"])) == {4: 1}


# -- validation


def test_validate_rule__good_rule_has_no_errors() -> None:
    good = rule(
        1,
        device_types=["kiosk-x86"],
        regions=["DE", "fr"],
        app_version=">=2.3,<3",
        attributes=[attr("tier", "in", ["pro"]), attr("ram_gb", "gte", 4)],
        percentage=12.5,
        bucket_by="attr:tier",
        salt="exp-1",
    )
    assert validate_rule(good) == []
    assert validate_rule(Rule.from_dict(good)) == []


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ({"attributes": [attr("tier", "contains", "p")]}, "unknown op 'contains' for attribute tier"),
        ({"app_version": ">>2"}, "invalid version range '>>2'"),
        ({"percentage": 101}, "percentage 101 is outside 0..100"),
        ({"percentage": -0.5}, "outside 0..100"),
        ({"percentage": "10"}, "is not a number"),
        ({"regions": ["DEU"]}, "region 'DEU' is not a 2-letter ISO 3166 code"),
        ({"regions": ["D1"]}, "2-letter"),
        ({"attributes": [attr(f"k{i}", "eq", 1) for i in range(MAX_ATTRIBUTE_CONDITIONS + 1)]}, "too many attribute"),
        ({"attributes": [attr("ram_gb", "gt", "4")]}, "needs a number"),
        ({"attributes": [attr("tier", "in", [])]}, "non-empty list"),
        ({"attributes": [attr("tier", "eq", None)]}, "string, number or boolean"),
        ({"attributes": [{"op": "eq", "value": 1}]}, "has no key"),
        ({"bucket_by": "serial"}, "bucket_by 'serial'"),
        ({"region": ["DE"]}, "unknown condition region"),
        ({"device_types": "kiosk"}, "device_types must be a list"),
    ],
)
def test_validate_rule__names_each_problem(conditions: dict, message: str) -> None:
    errors = validate_rule(rule(1, **conditions))
    assert any(message in error for error in errors), errors


def test_validate_rule__reports_every_problem_at_once() -> None:
    errors = validate_rule({"priority": "high", "conditions": {"regions": ["x"], "percentage": 200}})
    assert len(errors) == 4  # no id, priority, region, percentage
