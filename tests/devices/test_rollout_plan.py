"""The pure rules of a rollout plan: stages, thresholds, targets, sticky nested membership, fingerprint."""

from __future__ import annotations

import math

import pytest

from devices.core import rollout_plan
from devices.core.rollout_plan import (
    THRESHOLD_DEFAULTS,
    in_stage,
    plan_fingerprint,
    rate_cap,
    stage_errors,
    target_errors,
    targets_overlap,
    threshold_errors,
)

TYPICAL = [
    {"percent": 1, "dwell_minutes": 60},
    {"percent": 10, "dwell_minutes": 60},
    {"percent": 50, "dwell_minutes": 120},
    {"percent": 100, "dwell_minutes": 60},
]


def test_typical_stages__are_valid():
    assert stage_errors(TYPICAL) == []
    assert stage_errors([{"percent": 100, "dwell_minutes": 1}]) == []


@pytest.mark.parametrize(
    ("stages", "words"),
    [
        ([{"percent": 10, "dwell_minutes": 5}, {"percent": 5, "dwell_minutes": 5}], "below the stage before"),
        ([{"percent": 10, "dwell_minutes": 5}, {"percent": 10, "dwell_minutes": 5}], "repeats the stage before"),
        ([{"percent": 10, "dwell_minutes": 5}, {"percent": 120, "dwell_minutes": 5}], "at most 100"),
        ([{"percent": 0, "dwell_minutes": 5}, {"percent": 100, "dwell_minutes": 5}], "above 0"),
        ([{"percent": 10, "dwell_minutes": 5}, {"percent": 50, "dwell_minutes": 5}], "must be 100%"),
        ([{"percent": 100, "dwell_minutes": 0}], "dwell_minutes 0"),
        ([{"percent": 100, "dwell_minutes": 10**6}], "30 days"),
        ([{"percent": 100}], "exactly percent and dwell_minutes"),
        ([], "non-empty"),
    ],
)
def test_bad_stages__are_named(stages, words):
    errors = stage_errors(stages)
    assert errors and any(words in e for e in errors), errors


def test_defaults__are_valid_thresholds():
    assert threshold_errors(THRESHOLD_DEFAULTS) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_download_failure_rate", 1.5),
        ("max_install_failure_rate", -0.1),
        ("max_latency_regression", 50),
        ("min_devices_per_stage", 0),
        ("max_devices_per_minute", 0),
        ("rate_growth_factor", 0.5),
        ("max_download_failure_rate", float("nan")),
    ],
)
def test_threshold_out_of_range__is_named(name, value):
    errors = threshold_errors({**THRESHOLD_DEFAULTS, name: value})
    assert len(errors) == 1 and errors[0].startswith(name)


def test_rate_cap__grows_by_the_factor_per_stage():
    thresholds = {**THRESHOLD_DEFAULTS, "max_devices_per_minute": 100, "rate_growth_factor": 2.0}
    assert [rate_cap(i, thresholds) for i in range(4)] == [100, 200, 400, 800]
    assert rate_cap(3, THRESHOLD_DEFAULTS) is None


def test_target__refuses_a_percentage_and_validates_like_a_rule():
    assert target_errors({"device_types": ["x86-gateway"], "regions": ["DE"]}) == []
    assert "stages" in target_errors({"percentage": 10})[0]
    assert any("region" in e for e in target_errors({"regions": ["Germany"]}))


def test_device_in_at_one_percent__stays_in_at_every_later_stage():
    salt = "rollout:abc"
    keys = [f"device-{i}" for i in range(10_000)]
    previous: set[str] = set()
    for percent in (1, 10, 50, 100):
        inside = {key for key in keys if in_stage(key, salt, percent)}
        assert previous <= inside  # nested: nobody leaves
        # The share is within a 99.9% binomial interval around the stage's percentage.
        p, n = percent / 100, len(keys)
        spread = 3.3 * math.sqrt(n * p * (1 - p))
        assert abs(len(inside) - n * p) <= spread + 1, (percent, len(inside))
        previous = inside
    assert len(previous) == len(keys)


def test_each_rollout_has_its_own_one_percent():
    keys = [f"device-{i}" for i in range(10_000)]
    first = {k for k in keys if in_stage(k, "rollout:one", 1)}
    second = {k for k in keys if in_stage(k, "rollout:two", 1)}
    assert len(first & second) < len(first) // 4


def test_fingerprint__changes_with_the_plan_and_not_with_its_spelling():
    base = {"version_id": 3, "target": {"regions": ["DE"]}, "stages": TYPICAL, "thresholds": THRESHOLD_DEFAULTS}
    same = {**base, "target": {"regions": ["de"], "device_types": []}}
    same["stages"] = [{"percent": float(s["percent"]), "dwell_minutes": s["dwell_minutes"]} for s in TYPICAL]
    assert plan_fingerprint(**base) == plan_fingerprint(**same)
    assert plan_fingerprint(**base) != plan_fingerprint(**{**base, "version_id": 4})
    assert plan_fingerprint(**base) != plan_fingerprint(**{**base, "target": {"regions": ["FR"]}})
    assert plan_fingerprint(**base) != plan_fingerprint(**{**base, "stages": TYPICAL[1:]})
    loose = {**THRESHOLD_DEFAULTS, "max_install_failure_rate": 0.5}
    assert plan_fingerprint(**base) != plan_fingerprint(**{**base, "thresholds": loose})


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ({}, {"regions": ["DE"]}, True),
        ({"device_types": ["x86-gateway"]}, {"device_types": ["raspberry-pi-4"]}, False),
        ({"device_types": ["x86-gateway"], "regions": ["DE"]}, {"device_types": ["x86-gateway"]}, True),
        ({"regions": ["DE"]}, {"regions": ["FR", "IT"]}, False),
        ({"app_version": ">=2,<3"}, {"app_version": ">=3"}, False),
        ({"app_version": ">=2"}, {"app_version": "<2.5"}, True),
        (
            {"attributes": [{"key": "tier", "op": "eq", "value": "pro"}]},
            {"attributes": [{"key": "tier", "op": "in", "value": ["free", "basic"]}]},
            False,
        ),
        (
            {"attributes": [{"key": "tier", "op": "eq", "value": "pro"}]},
            {"attributes": [{"key": "ram_gb", "op": "gte", "value": 4}]},
            True,
        ),
    ],
)
def test_targets_overlap__unless_provably_disjoint(a, b, overlap):
    assert targets_overlap(a, b) is overlap
    assert targets_overlap(b, a) is overlap


def test_lifecycle__completed_cannot_resume_and_only_active_states_hold_devices():
    allowed, _ = rollout_plan.TRANSITIONS["resume"]
    assert rollout_plan.COMPLETED not in allowed
    assert rollout_plan.DRAFT not in rollout_plan.ACTIVE and rollout_plan.RUNNING in rollout_plan.ACTIVE
