"""A staged rollout's plan as plain values: its stages, thresholds, lifecycle, sticky membership and fingerprint.

No Django here: the services, the API, the admin, the beat task (devices.rollouts.engine) and resolution all ask
this module, so "which stages are valid", "which state may follow which", "is this device in the stage", "how
many devices may be offered it now" and "is the stage healthy" live once.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
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
# Rollouts check-in resolution reads: the running one offers its version, a paused or halted one keeps it on the
# devices that installed it, a rolled-back one sends those devices back to the previous version.
DECIDING = frozenset({RUNNING, PAUSED, HALTED, ROLLED_BACK})
# Rollouts that moved devices: only a change of one of these can change what a check-in answers.
STARTED = DECIDING | {COMPLETED}
# A retry of the devices that failed is for a rollout that stopped offering the version to new devices.
RETRYABLE = frozenset({PAUSED, HALTED})

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


def offered_percent(
    stages: Sequence[Mapping[str, Any]],
    stage_index: int,
    thresholds: Mapping[str, Any],
    *,
    minutes_elapsed: float,
    eligible_devices: int | None,
) -> float:
    """The share of the target (in %) offered the version ``minutes_elapsed`` into stage ``stage_index``.

    Without a rate cap: the stage's percent. With one, the stage opens gradually and statelessly: the devices of
    the stages before stay in, and ``rate_cap`` more devices per started minute are let in, as a share of the
    ``eligible_devices`` (enrolled devices the target reaches, counted when the stage started), up to the stage's
    percent. Rounded down to the 0.01 % devices are bucketed in, so the share never overshoots the cap; no
    device row is written, a device's bucket decides whether it is in (``in_stage``).
    """
    percent = float(stages[stage_index]["percent"])
    per_minute = rate_cap(stage_index, thresholds)
    if per_minute is None or not eligible_devices:
        return percent
    before = float(stages[stage_index - 1]["percent"]) if stage_index else 0.0
    minutes = math.floor(max(0.0, minutes_elapsed)) + 1  # the first minute's devices are let in at once
    share = before + 100.0 * per_minute * minutes / eligible_devices
    return min(percent, math.floor(share * 100) / 100)


def minutes_to_open(
    stages: Sequence[Mapping[str, Any]],
    stage_index: int,
    thresholds: Mapping[str, Any],
    *,
    eligible_devices: int | None,
) -> int:
    """Whole minutes into stage ``stage_index`` after which ``offered_percent`` reaches the stage's percent (0
    without a rate cap). The stage's dwell counts from then: every device of the stage gets the full dwell."""
    percent = float(stages[stage_index]["percent"])
    per_minute = rate_cap(stage_index, thresholds)
    if per_minute is None or not eligible_devices:
        return 0
    before = float(stages[stage_index - 1]["percent"]) if stage_index else 0.0
    minutes = max(0, math.ceil((percent - before) * eligible_devices / (100.0 * per_minute)) - 1)
    while (
        offered_percent(stages, stage_index, thresholds, minutes_elapsed=minutes, eligible_devices=eligible_devices)
        < percent
    ):
        minutes += 1  # the share is rounded down to basis points: a minute more may be needed
    return minutes


# -- health ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """What devices reported about the rollout's version (and the latency of the version it replaces), as
    counts of outcomes; the engine keeps one copy at each stage's start and judges the difference."""

    download_completed: int = 0
    download_failed: int = 0
    install_succeeded: int = 0
    install_failed: int = 0
    latency_count: int = 0  # inferences with a latency figure
    latency_p50_weighted: float = 0.0  # sum of p50 x inferences
    previous_latency_p50_ms: float | None = None  # the replaced version's mean p50, the baseline

    def since(self, start: Figures) -> Figures:
        """The outcomes reported after ``start`` was taken (the baseline stays this copy's)."""
        return Figures(
            download_completed=self.download_completed - start.download_completed,
            download_failed=self.download_failed - start.download_failed,
            install_succeeded=self.install_succeeded - start.install_succeeded,
            install_failed=self.install_failed - start.install_failed,
            latency_count=self.latency_count - start.latency_count,
            latency_p50_weighted=self.latency_p50_weighted - start.latency_p50_weighted,
            previous_latency_p50_ms=self.previous_latency_p50_ms,
        )

    @property
    def downloads(self) -> int:
        return self.download_completed + self.download_failed

    @property
    def installs(self) -> int:
        return self.install_succeeded + self.install_failed

    @property
    def latency_p50_ms(self) -> float | None:
        return self.latency_p50_weighted / self.latency_count if self.latency_count > 0 else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, data: Mapping[str, Any] | None) -> Figures:
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in (data or {}).items() if key in names})


@dataclass(frozen=True)
class Measure:
    """One health measure of a stage against its threshold."""

    name: str  # download_failure_rate, install_failure_rate, latency_regression
    value: float | None  # None: nothing to measure yet
    limit: float
    count: int  # outcomes it stands on
    total: int
    judged: bool  # enough devices reported (``min_devices_per_stage``) and a value to judge
    crossed: bool
    sentence: str  # e.g. "download failures 12% (6 of 50) > 5%"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def health(figures: Figures, thresholds: Mapping[str, Any]) -> list[Measure]:
    """The stage's three measures. A rate counts failures among outcomes (a download completed or failed, an
    install succeeded or failed); latency compares the mean on-device p50 with the replaced version's. Each is
    judged only once ``min_devices_per_stage`` outcomes were reported (for latency: installs), so three early
    failures in a stage of a thousand devices cannot halt it."""
    minimum = int(thresholds["min_devices_per_stage"])
    measures = [
        _rate(
            "download_failure_rate",
            "download failures",
            figures.download_failed,
            figures.downloads,
            thresholds["max_download_failure_rate"],
            minimum,
        ),
        _rate(
            "install_failure_rate",
            "install failures",
            figures.install_failed,
            figures.installs,
            thresholds["max_install_failure_rate"],
            minimum,
        ),
    ]
    limit = float(thresholds["max_latency_regression"])
    now, before = figures.latency_p50_ms, figures.previous_latency_p50_ms
    regression = now / before - 1 if now is not None and before else None
    judged = regression is not None and figures.install_succeeded >= minimum
    crossed = judged and regression is not None and regression > limit
    if regression is None:
        sentence = "latency: no figures yet" if before else "latency: the replaced version reported none to compare"
    else:
        assert now is not None and before is not None
        sentence = (
            f"latency p50 {_signed_percent(regression)} ({now:.3g} ms vs {before:.3g} ms on the replaced version) "
            f"{'>' if crossed else '<='} {_percent(limit)}"
        )
    if regression is not None and not judged:
        sentence += f", not judged until {minimum} devices installed ({figures.install_succeeded} so far)"
    measures.append(
        Measure("latency_regression", regression, limit, figures.install_succeeded, minimum, judged, crossed, sentence)
    )
    return measures


def _rate(name: str, words: str, failed: int, total: int, limit: float, minimum: int) -> Measure:
    value = failed / total if total else None
    judged = total >= minimum and value is not None
    crossed = judged and value is not None and value > limit
    if value is None:
        sentence = f"{words}: none reported yet"
    else:
        sentence = f"{words} {_percent(value)} ({failed} of {total}) {'>' if crossed else '<='} {_percent(limit)}"
        if not judged:
            sentence += f", not judged until {minimum} devices reported"
    return Measure(name, value, float(limit), failed, total, judged, crossed, sentence)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _signed_percent(fraction: float) -> str:
    return ("+" if fraction >= 0 else "") + _percent(fraction)


@dataclass(frozen=True)
class Step:
    """What the beat does with a running rollout: ``halt`` (``reason`` names the threshold and its figures),
    ``advance`` to the next stage, ``complete`` after the last, ``offer`` a larger share of the stage under the
    rate cap (``percent``), or ``wait``."""

    action: str
    reason: str = ""
    percent: float | None = None


HALT, ADVANCE, COMPLETE, OFFER, WAIT = "halt", "advance", "complete", "offer", "wait"


def next_step(
    *,
    stages: Sequence[Mapping[str, Any]],
    stage_index: int,
    offered: float,
    minutes_in_stage: float,
    figures: Figures,
    thresholds: Mapping[str, Any],
    eligible_devices: int | None,
) -> Step:
    """The beat's decision for a running rollout in stage ``stage_index`` that offers ``offered`` % now.

    A crossed threshold halts at once, whatever the dwell. Otherwise the stage is first opened to its full
    percent (gradually under a rate cap, ``minutes_to_open``), then, once its dwell has elapsed since, the
    rollout advances, or completes after the last stage. A stage whose measures could not be judged yet (too few devices reported) still
    advances after its dwell: a small fleet must not wait forever; the history says it was not judged.
    """
    crossed = [measure for measure in health(figures, thresholds) if measure.crossed]
    if crossed:
        return Step(HALT, "; ".join(measure.sentence for measure in crossed))
    share = offered_percent(
        stages, stage_index, thresholds, minutes_elapsed=minutes_in_stage, eligible_devices=eligible_devices
    )
    dwell_from = minutes_to_open(stages, stage_index, thresholds, eligible_devices=eligible_devices)
    if minutes_in_stage < dwell_from + int(stages[stage_index]["dwell_minutes"]):
        return Step(OFFER, percent=share) if share != offered else Step(WAIT)
    if stage_index + 1 >= len(stages):
        return Step(COMPLETE)
    return Step(ADVANCE)


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
