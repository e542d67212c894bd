"""Which arm of a running experiment a device is in: pure, shared by check-in, event counting and the agent.

An experiment targets devices with a rule's conditions (device types, regions, app version, attributes). Among
them, ``bucket(salt, device id)`` (devices.core.bucketing, under the experiment's own salt, so independent of
every rollout's buckets) walks the arms' weights in arm order (control first); weights are basis points of the
targeted devices and add up to the traffic share, so buckets past it are not in the experiment.

A device whose type cannot run every arm's version is *ineligible*: it is not enrolled and keeps what rollouts
and rules say. Enrolling it in the arms it can run would change who is in each arm, and serving it a fallback
inside an arm would compare something else than the arms' versions.

An arm a guardrail stopped serves nobody any more: its devices go back to rollouts and rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from devices.core.bucketing import bucket, pick_allocation
from devices.core.targeting.match import rule_matches
from devices.core.targeting.rules import Rule

IN_ARM = "in_arm"
INELIGIBLE = "ineligible"
OUTSIDE = "outside"  # not targeted, or past the traffic share


@dataclass(frozen=True)
class ArmPlan:
    id: int
    name: str
    version_id: int
    weight: int  # basis points of the targeted devices
    serving: bool = True  # False once a guardrail (or a person) stopped it


@dataclass(frozen=True)
class ExperimentPlan:
    id: int
    salt: str
    target: Mapping[str, Any]  # a rule's conditions without percentage
    arms: Sequence[ArmPlan]  # control first, then in a stable order (by id)

    @cached_property
    def target_rule(self) -> Rule:
        return Rule.from_dict({"id": f"experiment-{self.id}", "priority": 0, "version": 0, "conditions": self.target})


@dataclass(frozen=True)
class Assignment:
    experiment_id: int
    state: str  # IN_ARM, INELIGIBLE or OUTSIDE
    arm: ArmPlan | None = None  # the arm with IN_ARM; the arm it drew with INELIGIBLE
    reason: str = ""


def assign(plan: ExperimentPlan, config: Mapping[str, Any], can_run: Callable[[int], bool]) -> Assignment:
    """The arm ``config`` (a device's targeting configuration) is in.

    ``can_run(version_id)``: whether the device's type may run that version (compatibility and readiness).
    """
    matched, _ = rule_matches(plan.target_rule, config)
    if not matched:
        return Assignment(plan.id, OUTSIDE, reason="not targeted")
    drawn = pick_allocation(
        bucket(plan.salt, str(config["device_id"])), [(str(arm.id), arm.weight) for arm in plan.arms]
    )
    if drawn is None:
        return Assignment(plan.id, OUTSIDE, reason="outside the traffic share")
    arm = next(arm for arm in plan.arms if str(arm.id) == drawn)
    cannot = [other for other in plan.arms if not can_run(other.version_id)]
    if cannot:
        names = ", ".join(other.name for other in cannot)
        return Assignment(plan.id, INELIGIBLE, arm, f"its device type cannot run arm {names}: not enrolled")
    return Assignment(plan.id, IN_ARM, arm, f"experiment {plan.id}, arm {arm.name}")


def serving_assignment(
    plans: Sequence[ExperimentPlan], config: Mapping[str, Any], can_run: Callable[[int], bool]
) -> Assignment | None:
    """The first running experiment that puts the device in an arm still serving, if any.

    Running experiments of one model never reach the same devices (creation refuses overlaps), so at most one
    holds; the order only matters for data written before that rule.
    """
    for plan in plans:
        found = assign(plan, config, can_run)
        if found.state == IN_ARM and found.arm is not None and found.arm.serving:
            return found
    return None
