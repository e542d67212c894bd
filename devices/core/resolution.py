"""Which version of a model a device should run: the one place delivery decides.

Pure: plain dataclasses in, an ``Outcome`` out; ``devices.delivery.cache`` loads the plans from the database and
``devices.delivery.checkin`` stores and answers the outcome. Resolution has two steps:

1. Decide. ``DECIDERS`` are asked in order and the first that names a version wins: the arm of a running
   experiment (``decide_by_experiment``, ``devices.core.experiment_assign``; a device whose type cannot run
   every arm is not enrolled, so an arm never ends in a fallback), then the model's rollouts
   (``decide_by_rollouts``: a running rollout's stage, a paused or halted one keeping its version where it is
   installed, a rolled-back one sending those devices back), then targeting rules (``devices.core.targeting``,
   first match by priority), then the model's default version. A decider takes (plan, device, installed
   version id).
2. Make it runnable. A version the device type cannot run (its compatibility row says no, or it was never
   checked for that type, or it is not ``ready``) is never served. Instead the closest ready descendant in
   its lineage that the type can run (fewest derivation steps, then the smallest file, then the oldest) is
   served with status ``fallback``; with none, the device keeps what it has (status ``none``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devices.core import experiment_assign, rollout_plan
from devices.core.targeting.match import rule_matches
from devices.core.targeting.rules import Conditions, Rule, ordered_rules

# How a version was picked (DeviceModelState.resolution stores these).
ROLLOUT = "rollout"
RULE = "rule"
EXPERIMENT = "experiment"
DEFAULT = "default"
COMPATIBLE_VARIANT = "compatible_variant"
KEPT_INSTALLED = "kept_installed"
NOTHING = "nothing"

# The protocol's status words.
ASSIGNED = "assigned"
FALLBACK = "fallback"
NONE = "none"

_MAX_CANDIDATE_KEYS = 10_000


@dataclass(frozen=True)
class VersionFacts:
    id: int
    number: int
    state: str
    servable: bool  # console.models.is_servable(state), decided when the plan is loaded
    sha256: str
    size: int
    format: str
    parent_id: int | None
    runtime: Mapping[str, Any]
    runnable_on: frozenset[int]  # device type ids whose check passed
    blocked_on: Mapping[int, str]  # device type id -> why its check failed


@dataclass(frozen=True)
class RolloutFacts:
    """A rollout as resolution reads it (``rollout_plan.DECIDING`` states only)."""

    id: int
    state: str
    version_id: int
    previous_version_id: int | None
    target: Rule  # the target's conditions, matched like a rule's
    salt: str
    stage: int  # 0-based
    percent: float  # the share of the target offered now (the stage's, or less under a rate cap)
    retry_generation: int = 0  # >0: the answer carries it, so agents try a version they gave up on again
    retry_devices: frozenset[str] = frozenset()  # device ids that may retry while paused or halted


@dataclass
class ModelPlan:
    """Everything resolution needs about one model, loaded once and shared by every check-in."""

    model_id: int
    name: str
    rules: Sequence[Rule]  # ``Rule.version`` is a version id; kept in evaluation order
    default_version_id: int | None
    versions: Mapping[int, VersionFacts]
    children: Mapping[int, Sequence[int]]
    # Running, paused or halted rollouts first, then recently rolled-back ones; newest first within each.
    rollouts: Sequence[RolloutFacts] = ()
    # (device type, region) -> the rules that can hold for it; filled as devices come (see rules_for).
    _candidates: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict, repr=False)
    # version id -> signed manifest (built once by devices.manifests).
    signed_manifests: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)
    # Running experiments of the model (devices.core.experiment_assign), asked before rollouts and rules.
    experiments: Sequence[experiment_assign.ExperimentPlan] = ()

    def __post_init__(self) -> None:
        self.rules = tuple(ordered_rules(self.rules))

    def rules_for(self, device_type: str, region: str) -> tuple[Rule, ...]:
        """The rules whose device type and region conditions hold for this pair, in evaluation order.

        A pure prefilter, so a check-in does not walk hundreds of rules written for other device types or
        regions; it asks ``targeting.rule_matches`` itself, so the semantics stay in one place.
        """
        key = (device_type, region)
        cached = self._candidates.get(key)
        if cached is None:
            probe = {"device_type": device_type, "region": region}
            cached = tuple(rule for rule in self.rules if rule_matches(_type_and_region_only(rule), probe)[0])
            if len(self._candidates) >= _MAX_CANDIDATE_KEYS:
                self._candidates.clear()
            self._candidates[key] = cached
        return cached


@dataclass(frozen=True)
class DeviceFacts:
    device_id: str
    device_type_id: int
    device_type: str  # slug
    region: str
    app_version: str
    attributes: Mapping[str, Any]

    def targeting_config(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "device_type": self.device_type,
            "region": self.region,
            "app_version": self.app_version,
            "attributes": self.attributes,
        }


@dataclass(frozen=True)
class Decision:
    """What a decider picked, before compatibility is considered."""

    version_id: int
    resolution: str  # ROLLOUT, RULE or DEFAULT (later also experiment arms)
    reason: str
    rule_id: Any = None  # the rule's id, or the rollout's
    retry_generation: int = 0  # a rollout's retry of failed devices (the answer carries it to the agent)


@dataclass(frozen=True)
class Outcome:
    status: str  # ASSIGNED, FALLBACK or NONE
    resolution: str
    reason: str
    version_id: int | None  # what to serve; None with status NONE
    decision: Decision | None = None


Decider = Callable[[ModelPlan, DeviceFacts, int | None], Decision | None]


def decide_by_experiment(
    plan: ModelPlan, device: DeviceFacts, installed_version_id: int | None = None
) -> Decision | None:
    """The arm of a running experiment the device is enrolled in; never one its type cannot run.

    ``installed_version_id`` is not read: an arm is sticky by bucket, whatever the device runs (it takes the
    argument so it fits a decider signature that passes it)."""
    if not plan.experiments:
        return None
    found = experiment_assign.serving_assignment(
        plan.experiments,
        device.targeting_config(),
        lambda version_id: why_not_runnable(plan.versions.get(version_id), device) is None,
    )
    if found is None or found.arm is None:
        return None
    return Decision(found.arm.version_id, EXPERIMENT, found.reason, found.arm.id)


def decide_by_rollouts(plan: ModelPlan, device: DeviceFacts, installed_version_id: int | None) -> Decision | None:
    """The version a rollout of the model decides for ``device``, or None to leave it to the rules.

    For a device its target reaches: a running rollout offers its version to the devices of the stage
    (``rollout_plan.in_stage``, sticky and nested). A paused or halted one offers it to no new device, but a
    device that installed it (or the compatible variant of it its type runs) keeps it; after a retry, the devices listed as having failed may try again. A
    rolled-back one sends the devices on its version back to the version before it (the agent still holds
    that file). Two active rollouts of a model never reach a common device (the services refuse it).
    """
    config = None
    for rollout in plan.rollouts:
        if config is None:
            config = device.targeting_config()
        if not rule_matches(rollout.target, config)[0]:
            continue
        installed = _derived_from(plan, installed_version_id, rollout.version_id)
        if rollout.state == rollout_plan.ROLLED_BACK:
            if installed and rollout.previous_version_id is not None:
                return Decision(
                    rollout.previous_version_id,
                    ROLLOUT,
                    f"rollout {rollout.id} was rolled back: back to the version it replaced",
                    rollout.id,
                )
            continue
        in_stage = rollout.percent > 0 and rollout_plan.in_stage(device.device_id, rollout.salt, rollout.percent)
        where = f"rollout {rollout.id}, stage {rollout.stage + 1} ({rollout.percent:g}% of its target)"
        if rollout.state == rollout_plan.RUNNING and in_stage:
            return Decision(rollout.version_id, ROLLOUT, where, rollout.id, rollout.retry_generation)
        if installed:
            return Decision(
                rollout.version_id,
                ROLLOUT,
                f"{where} is {rollout.state.replace('_', ' ')}; the device installed its version and keeps it",
                rollout.id,
                rollout.retry_generation,
            )
        if in_stage and device.device_id in rollout.retry_devices:
            return Decision(
                rollout.version_id,
                ROLLOUT,
                f"{where} is {rollout.state.replace('_', ' ')}; retrying a device whose download or install failed",
                rollout.id,
                rollout.retry_generation,
            )
    return None


def _derived_from(plan: ModelPlan, version_id: int | None, ancestor_id: int) -> bool:
    """Whether ``version_id`` is ``ancestor_id`` or a variant made from it (a device the rollout reached through
    a compatible variant holds that variant)."""
    seen: set[int] = set()
    while version_id is not None and version_id not in seen:
        if version_id == ancestor_id:
            return True
        seen.add(version_id)
        facts = plan.versions.get(version_id)
        version_id = facts.parent_id if facts is not None else None
    return False


def decide_by_rules(plan: ModelPlan, device: DeviceFacts, installed_version_id: int | None = None) -> Decision | None:
    config = device.targeting_config()
    for rule in plan.rules_for(device.device_type, device.region.upper()):
        matched, reason = rule_matches(rule, config)
        if matched:
            return Decision(rule.version, RULE, f"rule {rule.id} ({reason})", rule.id)
    return None


def decide_by_default(plan: ModelPlan, device: DeviceFacts, installed_version_id: int | None = None) -> Decision | None:
    if plan.default_version_id is None:
        return None
    return Decision(plan.default_version_id, DEFAULT, "no rule matches; the model's default version")


DECIDERS: tuple[Decider, ...] = (decide_by_experiment, decide_by_rollouts, decide_by_rules, decide_by_default)


def resolve_model(
    plan: ModelPlan,
    device: DeviceFacts,
    *,
    installed_version_id: int | None = None,
    deciders: Sequence[Decider] = DECIDERS,
) -> Outcome:
    """The version ``device`` should run for ``plan``'s model, and why."""
    decision = next(
        (found for decider in deciders if (found := decider(plan, device, installed_version_id)) is not None), None
    )
    if decision is None:
        return Outcome(NONE, NOTHING, "no rule matches and the model has no default version", None)
    version = plan.versions.get(decision.version_id)
    problem = why_not_runnable(version, device)
    if problem is None:
        # The protocol calls the default version a fallback; an experiment arm, a rollout or a rule is an assignment.
        status = ASSIGNED if decision.resolution in (RULE, ROLLOUT, EXPERIMENT) else FALLBACK
        return Outcome(status, decision.resolution, decision.reason, decision.version_id, decision)
    picked = f"{decision.reason} picks version {version.number if version else decision.version_id}"
    variant = closest_runnable_descendant(plan, decision.version_id, device)
    if variant is not None:
        reason = f"{picked}, which {problem}; serving version {variant.number}, a compatible variant derived from it"
        return Outcome(FALLBACK, COMPATIBLE_VARIANT, reason, variant.id, decision)
    if installed_version_id is not None:
        reason = f"{picked}, which {problem}, and no variant of it can; keeping the installed version"
        return Outcome(NONE, KEPT_INSTALLED, reason, None, decision)
    reason = f"{picked}, which {problem}, and no variant of it can; nothing to install"
    return Outcome(NONE, NOTHING, reason, None, decision)


def why_not_runnable(version: VersionFacts | None, device: DeviceFacts) -> str | None:
    """None when ``device``'s type may run ``version``, else the reason as a clause ("cannot run on ...")."""
    if version is None:
        return "no longer exists"
    if not version.servable:
        return f"is {version.state}, not ready"
    if device.device_type_id in version.runnable_on:
        return None
    blocked = version.blocked_on.get(device.device_type_id)
    if blocked is not None:
        return f"cannot run on {device.device_type} ({blocked})"
    return f"was never checked against {device.device_type}"


def closest_runnable_descendant(plan: ModelPlan, version_id: int, device: DeviceFacts) -> VersionFacts | None:
    """The runnable variant fewest derivation steps below ``version_id``; ties go to the smallest, then oldest."""
    level = list(plan.children.get(version_id, ()))
    seen = {version_id}
    while level:
        seen.update(level)
        runnable = [
            plan.versions[child]
            for child in level
            if child in plan.versions and why_not_runnable(plan.versions[child], device) is None
        ]
        if runnable:
            return min(runnable, key=lambda facts: (facts.size, facts.id))
        level = [grandchild for child in level for grandchild in plan.children.get(child, ()) if grandchild not in seen]
    return None


def _type_and_region_only(rule: Rule) -> Rule:
    conditions = Conditions(device_types=rule.conditions.device_types, regions=rule.conditions.regions)
    return Rule(id=rule.id, priority=rule.priority, conditions=conditions, version=rule.version)
