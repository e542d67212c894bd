"""A staged rollout's plan as plain values: its stages, thresholds, lifecycle, sticky membership and fingerprint.

No Django here: the services, the API, the admin and (later) the beat task and resolution all ask this module,
so "which stages are valid", "which state may follow which" and "is this device in the stage" live once.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from devices.core.bucketing import in_percentage, percent_to_basis_points
from devices.core.semver import Interval, parse_range
from devices.core.targeting.validate import validate_rule

# -- lifecycle ---------------------------------------------------------------------------------------------

DRAFT = "draft"
PENDING_APPROVAL = "pending_approval"
APPROVED = "approved"
REJECTED = "rejected"
RUNNING = "running"
PAUSED = "paused"
HALTED = "halted"
COMPLETED = "completed"
ROLLED_BACK = "rolled_back"

# Which state each action may start from, and where it leads. ``halt`` and ``complete`` are the beat task's.
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "submit": (frozenset({DRAFT}), PENDING_APPROVAL),
    "approve": (frozenset({PENDING_APPROVAL}), APPROVED),
    "reject": (frozenset({PENDING_APPROVAL}), REJECTED),
    "start": (frozenset({APPROVED}), RUNNING),
    "pause": (frozenset({RUNNING}), PAUSED),
    "resume": (frozenset({PAUSED, HALTED}), RUNNING),
    "halt": (frozenset({RUNNING}), HALTED),
    "complete": (frozenset({RUNNING}), COMPLETED),
    "rollback": (frozenset({RUNNING, PAUSED, HALTED, COMPLETED}), ROLLED_BACK),
}
# A plan may change only before it moves devices; once approved, a change voids the approval.
EDITABLE = frozenset({DRAFT, PENDING_APPROVAL, APPROVED, REJECTED})
# Rollouts that hold (or are about to hold) devices: a second one over the same devices would fight it.
ACTIVE = frozenset({APPROVED, RUNNING, PAUSED, HALTED})
FINISHED = frozenset({COMPLETED, ROLLED_BACK})

# -- bounds ------------------------------------------------------------------------------------------------

MAX_STAGES = 10
MIN_DWELL_MINUTES = 1
MAX_DWELL_MINUTES = 30 * 24 * 60  # a stage that must wait longer than a month is a separate rollout
MAX_LATENCY_REGRESSION = 10.0  # 10 = eleven times slower; beyond that the threshold guards nothing
MAX_MIN_DEVICES = 1_000_000
MAX_DEVICES_PER_MINUTE = 1_000_000
MIN_GROWTH_FACTOR = 1.0
MAX_GROWTH_FACTOR = 10.0
# Conditions a rollout target may hold: a rule's, less the percentage split (the stages are the split) and its
# bucketing (a rollout buckets by device id under its own salt).
TARGET_KEYS = frozenset({"device_types", "regions", "app_version", "attributes"})

THRESHOLD_DEFAULTS: dict[str, Any] = {
    "max_download_failure_rate": 0.05,
    "max_install_failure_rate": 0.05,
    "max_latency_regression": 0.2,
    "min_devices_per_stage": 20,
    "max_devices_per_minute": None,
    "rate_growth_factor": 2.0,
}


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def stage_errors(stages: Any) -> list[str]:
    """Every problem with ``stages`` ([{percent, dwell_minutes}, ...]), as sentences; empty when good.

    Percentages must strictly increase (compared in basis points, the unit devices are bucketed in), stay in
    0 < p <= 100, and the last must be 100: a rollout ends with every targeted device on the version.
    """
    if not isinstance(stages, list | tuple) or not stages:
        return ["stages must be a non-empty list of {percent, dwell_minutes}, e.g. 1%, 10%, 50%, 100%."]
    if len(stages) > MAX_STAGES:
        return [f"{len(stages)} stages; at most {MAX_STAGES}."]
    errors: list[str] = []
    previous: int | None = None
    for number, stage in enumerate(stages, start=1):
        if not isinstance(stage, Mapping) or set(stage) != {"percent", "dwell_minutes"}:
            errors.append(f"stage {number} must be an object with exactly percent and dwell_minutes.")
            continue
        percent, dwell = stage["percent"], stage["dwell_minutes"]
        if not _is_number(percent) or not 0 < percent <= 100:
            errors.append(f"stage {number}: percent {percent!r} must be a number above 0 and at most 100.")
        else:
            points = percent_to_basis_points(percent)
            if points == 0:
                errors.append(f"stage {number}: percent {percent} is below 0.01%, the smallest share a device has.")
            elif previous is not None and points == previous:
                errors.append(f"stage {number}: {percent}% repeats the stage before; each stage must reach more.")
            elif previous is not None and points < previous:
                errors.append(f"stage {number}: {percent}% is below the stage before; percentages must go up.")
            previous = points
        if isinstance(dwell, bool) or not isinstance(dwell, int) or not MIN_DWELL_MINUTES <= dwell <= MAX_DWELL_MINUTES:
            errors.append(
                f"stage {number}: dwell_minutes {dwell!r} must be a whole number of minutes from "
                f"{MIN_DWELL_MINUTES} to {MAX_DWELL_MINUTES} (30 days)."
            )
    last = stages[-1]
    if isinstance(last, Mapping) and _is_number(last.get("percent")) and last["percent"] != 100 and not errors:
        errors.append(f"the last stage is {last['percent']}%; it must be 100% (every targeted device).")
    return errors


def threshold_errors(thresholds: Mapping[str, Any]) -> list[str]:
    """Every problem with the health thresholds and rate cap (``THRESHOLD_DEFAULTS`` keys), as sentences."""
    errors: list[str] = []
    for name in ("max_download_failure_rate", "max_install_failure_rate"):
        value = thresholds.get(name)
        if not _is_number(value) or not 0 <= value <= 1:
            errors.append(f"{name} {value!r} must be a fraction from 0 to 1 (0.05 = 5% of the stage's devices).")
    regression = thresholds.get("max_latency_regression")
    if not _is_number(regression) or not 0 <= regression <= MAX_LATENCY_REGRESSION:
        errors.append(
            f"max_latency_regression {regression!r} must be a fraction from 0 to {MAX_LATENCY_REGRESSION:g} "
            "(0.2 = at most 20% slower than the version it replaces)."
        )
    minimum = thresholds.get("min_devices_per_stage")
    if isinstance(minimum, bool) or not isinstance(minimum, int) or not 1 <= minimum <= MAX_MIN_DEVICES:
        errors.append(f"min_devices_per_stage {minimum!r} must be a whole number from 1 to {MAX_MIN_DEVICES}.")
    cap = thresholds.get("max_devices_per_minute")
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_DEVICES_PER_MINUTE
    ):
        errors.append(f"max_devices_per_minute {cap!r} must be empty (no cap) or 1 to {MAX_DEVICES_PER_MINUTE}.")
    growth = thresholds.get("rate_growth_factor")
    if not _is_number(growth) or not MIN_GROWTH_FACTOR <= growth <= MAX_GROWTH_FACTOR:
        errors.append(f"rate_growth_factor {growth!r} must be from {MIN_GROWTH_FACTOR:g} to {MAX_GROWTH_FACTOR:g}.")
    return errors


def target_errors(target: Any) -> list[str]:
    """Problems with a rollout's target: a targeting rule's conditions without percentage, bucket_by or salt."""
    if not isinstance(target, Mapping):
        return ["target must be an object (device_types, regions, app_version, attributes)."]
    extra = sorted(set(target) - TARGET_KEYS)
    if extra:
        return [
            f"target may not hold {', '.join(extra)}: a rollout splits devices by its stages under its own salt; "
            f"use {', '.join(sorted(TARGET_KEYS))}."
        ]
    return validate_rule({"id": 0, "priority": 0, "conditions": dict(target)})


def rate_cap(stage_index: int, thresholds: Mapping[str, Any]) -> int | None:
    """Devices per minute offered the version in stage ``stage_index`` (0-based): the cap times the growth
    factor once per stage after the first; None when there is no cap."""
    cap = thresholds.get("max_devices_per_minute")
    if cap is None:
        return None
    return math.floor(cap * thresholds["rate_growth_factor"] ** stage_index)


# -- membership --------------------------------------------------------------------------------------------


def in_stage(device_key: str, salt: str, percent: float) -> bool:
    """Whether a device is among the first ``percent`` % of the rollout's buckets.

    Nested by construction (devices.core.bucketing): a device in at 1 % is in at 10 %, and since each rollout
    has its own salt, the 1 % of one rollout is not the 1 % of the next.
    """
    return in_percentage(salt, device_key, percent)


# -- fingerprint -------------------------------------------------------------------------------------------


def plan_fingerprint(
    *, version_id: int, target: Mapping[str, Any], stages: Sequence[Mapping[str, Any]], thresholds: Mapping[str, Any]
) -> str:
    """sha256 of what an approver signs off: the version, the target, the stages and the thresholds.

    Canonical JSON (sorted keys, numbers as floats for percentages), so the same plan written two ways — 10
    or 10.0 — has one fingerprint, and any real change gives another (which voids an approval).
    """
    canonical = {
        "version": version_id,
        "target": _canonical_target(target),
        "stages": [{"percent": float(s["percent"]), "dwell_minutes": int(s["dwell_minutes"])} for s in stages],
        "thresholds": {
            key: (None if thresholds.get(key) is None else float(thresholds[key])) for key in sorted(THRESHOLD_DEFAULTS)
        },
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _canonical_target(target: Mapping[str, Any]) -> dict[str, Any]:
    # Empty lists and empty strings mean "any", as a missing key does.
    out: dict[str, Any] = {}
    for key in sorted(TARGET_KEYS):
        value = target.get(key)
        if not value:
            continue
        if key in ("device_types", "regions"):
            value = sorted({str(v).upper() if key == "regions" else str(v) for v in value})
        elif key == "app_version":
            value = value.strip()
        out[key] = value
    return out


# -- overlap -----------------------------------------------------------------------------------------------


def targets_overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two targets may reach a common device. Conservative: True unless provably disjoint.

    Disjoint when the device-type lists or the region lists (both given) share nothing, when the app-version
    ranges share no version, or when both pin one attribute (eq/in) to value sets that share nothing.
    """
    for key in ("device_types", "regions"):
        left, right = set(a.get(key) or ()), set(b.get(key) or ())
        if left and right and not left & right:
            return False
    if a.get("app_version") and b.get("app_version") and not _ranges_meet(a["app_version"], b["app_version"]):
        return False
    pinned_a, pinned_b = _pinned_attributes(a), _pinned_attributes(b)
    return all(pinned_a[key] & pinned_b[key] for key in pinned_a.keys() & pinned_b.keys())


def _pinned_attributes(target: Mapping[str, Any]) -> dict[str, set[Any]]:
    pinned: dict[str, set[Any]] = {}
    for condition in target.get("attributes") or ():
        op, value = condition.get("op"), condition.get("value")
        values = {json.dumps(value)} if op == "eq" else {json.dumps(v) for v in value} if op == "in" else None
        if values is not None:
            key = condition["key"]
            pinned[key] = pinned[key] & values if key in pinned else values
    return pinned


def _ranges_meet(left: str, right: str) -> bool:
    try:
        ranges = parse_range(left), parse_range(right)
    except ValueError:
        return True  # validation reports it; never call a bad range disjoint
    return any(_not_empty(i.intersect(j)) for i in ranges[0].intervals for j in ranges[1].intervals)


def _not_empty(interval: Interval) -> bool:
    if interval.lower is None or interval.upper is None:
        return True
    if interval.lower < interval.upper:
        return True
    return interval.lower == interval.upper and interval.lower_inclusive and interval.upper_inclusive
