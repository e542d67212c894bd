"""State changes of experiments: create, start, stop, stop an arm (guardrails), promote the winner.

Every refusal is a ``Refused`` (400) or ``Overlap``/``WrongState`` (409) with a sentence a person can act on;
nothing is written when one is raised. Changes that concern two experiments of one model lock the model row
first, then the experiment (the order rollouts use).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from console.errors import Refused
from console.models import CompatibilityResult, Model, ModelVersion
from devices.core import rollout_plan
from devices.core.bucketing import percent_to_basis_points
from devices.core.targeting.validate import validate_rule
from devices.experiments.metrics import METRICS
from devices.models import Device, DeviceType, Experiment, ExperimentArm, Rollout
from devices.rollouts.services import propose_rollout

MAX_ARMS = 10
# What a promoted winner's rollout proposes unless edited before submitting: a cautious ramp.
PROMOTION_STAGES = [
    {"percent": 10, "dwell_minutes": 60},
    {"percent": 50, "dwell_minutes": 240},
    {"percent": 100, "dwell_minutes": 60},
]


class WrongState(Refused):
    """The experiment is not in a state that allows the action: 409."""


class Overlap(Refused):
    """Another running experiment of the model reaches the same devices: 409."""


@dataclass(frozen=True)
class ArmSpec:
    version: ModelVersion
    weight_percent: float
    name: str = ""
    control: bool | None = None


def target_errors(target: Any) -> list[str]:
    """A rule's conditions without percentage, bucket_by or salt: the experiment splits by its own salt."""
    if not isinstance(target, dict):
        return ["target must be an object (device_types, regions, app_version, attributes)."]
    extra = sorted(set(target) - rollout_plan.TARGET_KEYS)
    if extra:
        return [
            f"target may not hold {', '.join(extra)}: an experiment splits its devices by its arms' weights under "
            f"its own salt; use {', '.join(sorted(rollout_plan.TARGET_KEYS))}."
        ]
    return validate_rule({"id": 0, "priority": 0, "conditions": dict(target)})


def targeted_device_types(project_id: int, target: dict[str, Any]) -> list[DeviceType]:
    """The device types the target names; when it names none, those of the project's enrolled devices."""
    visible = DeviceType.objects.visible_to(project_id)
    named = target.get("device_types") or []
    if named:
        return list(visible.filter(slug__in=named).order_by("slug"))
    enrolled = Device.objects.filter(project_id=project_id, revoked_at=None).values("device_type_id")
    return list(visible.filter(pk__in=enrolled).order_by("slug"))


def _check_arms(model: Model, target: dict[str, Any], traffic_bp: int, arms: Sequence[ArmSpec]) -> list[ArmSpec]:
    """The arms control first, or a refusal naming what is wrong."""
    if len(arms) < 2:
        raise Refused("an experiment needs at least two arms: a control (what devices run today) and a challenger.")
    if len(arms) > MAX_ARMS:
        raise Refused(f"at most {MAX_ARMS} arms.")
    marked = [arm for arm in arms if arm.control is not None]
    if marked and sum(bool(arm.control) for arm in arms) != 1:
        raise Refused(
            "no control arm: mark exactly one arm control: true (the version devices run today), or leave control "
            "out and the first arm is control."
            if not any(arm.control for arm in arms)
            else "more than one arm is marked control: mark exactly one."
        )
    ordered = sorted(arms, key=lambda arm: not arm.control) if marked else list(arms)
    seen: dict[int, int] = {}
    for arm in ordered:
        version = arm.version
        if version.model_id != model.pk:
            raise Refused(f"version id {version.pk} belongs to another model, not to {model.name}.")
        if version.pk in seen:
            raise Refused(f"two arms use version {version.number}: each arm must compare a different version.")
        seen[version.pk] = 1
        if not version.is_servable:
            what = "has not been checked yet" if version.state == ModelVersion.State.CHECKING else "failed its check"
            raise Refused(
                f"version {version.number} {what} ({version.state}); only a ready (checked) version can be an arm."
            )
    try:
        weights = [percent_to_basis_points(arm.weight_percent) for arm in ordered]
    except ValueError as exc:
        raise Refused(f"an arm's weight: {exc}.") from exc
    if any(weight <= 0 for weight in weights):
        raise Refused("every arm needs a weight above 0 %.")
    if sum(weights) != traffic_bp:
        raise Refused(
            f"the arms' weights add up to {sum(weights) / 100:g} % but the traffic share is {traffic_bp / 100:g} %: "
            "the weights split the devices in the experiment, so they must add up to the traffic share."
        )
    types = targeted_device_types(model.project_id, target)
    if not types:
        raise Refused("the target reaches no device type: name device_types, or enroll devices first.")
    runnable: dict[int, set[int]] = {}
    for version_id, type_id in CompatibilityResult.objects.filter(
        version_id__in=seen, device_type__in=types, compatible=True
    ).values_list("version_id", "device_type_id"):
        runnable.setdefault(version_id, set()).add(type_id)
    for arm in ordered:
        if not runnable.get(arm.version.pk):
            raise Refused(
                f"version {arm.version.number} cannot run on any targeted device type "
                f"({', '.join(t.slug for t in types)}); pick a variant built for them or change the target."
            )
    return ordered


def create_experiment(
    *,
    model: Model,
    user,
    name: str,
    arms: Sequence[ArmSpec],
    traffic_percent: float,
    primary_metric: str,
    guardrail_metrics: Sequence[str] = (),
    target: dict[str, Any] | None = None,
    planned_sample_size: int | None = None,
    sequential: bool = True,
    description: str = "",
) -> Experiment:
    """A draft experiment; nothing reaches devices until it is started."""
    target = dict(target or {})
    problems = target_errors(target)
    if problems:
        raise Refused(" ".join(problems))
    if not isinstance(traffic_percent, int | float) or not 0 < traffic_percent <= 100:
        raise Refused(f"traffic share {traffic_percent:g} % must be above 0 and at most 100 %.")
    traffic_bp = percent_to_basis_points(traffic_percent)
    if primary_metric not in METRICS:
        raise Refused(f"unknown primary metric {primary_metric!r}; one of {', '.join(METRICS)}.")
    unknown = [name for name in guardrail_metrics if name not in METRICS]
    if unknown:
        raise Refused(f"unknown guardrail metric {', '.join(unknown)}; any of {', '.join(METRICS)}.")
    ordered = _check_arms(model, target, traffic_bp, arms)
    with transaction.atomic():
        experiment = Experiment.objects.create(
            project_id=model.project_id,
            model=model,
            name=name,
            description=description,
            target=target,
            traffic_bp=traffic_bp,
            primary_metric=primary_metric,
            guardrail_metrics=[g for g in dict.fromkeys(guardrail_metrics) if g != primary_metric],
            planned_sample_size=planned_sample_size,
            sequential=sequential,
            salt=f"experiment:{secrets.token_hex(8)}",
            created_by=user,
        )
        for position, arm in enumerate(ordered):
            ExperimentArm.objects.create(
                experiment=experiment,
                name=arm.name or f"v{arm.version.number}",
                version=arm.version,
                weight_bp=percent_to_basis_points(arm.weight_percent),
                position=position,
            )
    return experiment


def _locked(experiment: Experiment) -> Experiment:
    return Experiment.objects.select_for_update().select_related("model").get(pk=experiment.pk)


def start_experiment(*, experiment: Experiment, user) -> Experiment:
    """Draft -> running: devices are assigned at their next check-in. Refused when another running experiment
    of the model reaches the same devices, or when there is no control arm."""
    with transaction.atomic():
        Model.objects.select_for_update().filter(pk=experiment.model_id).first()
        locked = _locked(experiment)
        if locked.state != Experiment.State.DRAFT:
            raise WrongState(f"experiment {locked.name} is {locked.state}; only a draft can start.")
        arms = list(locked.arms.order_by("position"))
        if not arms or arms[0].position != 0 or len(arms) < 2:
            raise Refused(
                f"experiment {locked.name} has no control arm and a challenger; create it again with a control arm "
                "(the version devices run today) first."
            )
        _check_arms(
            locked.model,
            locked.target,
            locked.traffic_bp,
            [ArmSpec(arm.version, arm.weight_bp / 100, arm.name) for arm in arms],
        )
        for other in Experiment.objects.running().filter(model_id=locked.model_id).exclude(pk=locked.pk):
            if rollout_plan.targets_overlap(locked.target, other.target):
                raise Overlap(
                    f"experiment {other.name} of {locked.model.name} is running on devices this target reaches; "
                    f"a device can be in one experiment of a model at a time. Narrow the target (device types, "
                    f"regions, app version) or stop {other.name} first."
                )
        locked.state = Experiment.State.RUNNING
        locked.started_at = timezone.now()
        locked.save()
    return locked


def stop_experiment(*, experiment: Experiment, user, reason: str = "") -> Experiment:
    """Running -> stopped: assignment ends; devices go back to what rollouts and rules say at their next check-in."""
    with transaction.atomic():
        locked = _locked(experiment)
        if locked.state != Experiment.State.RUNNING:
            raise WrongState(f"experiment {locked.name} is {locked.state}; only a running experiment can stop.")
        locked.state = Experiment.State.STOPPED
        locked.stopped_at = timezone.now()
        locked.stop_reason = reason.strip() or f"stopped by {getattr(user, 'username', None) or 'the system'}"
        locked.save()
    return locked


def stop_arm(*, arm: ExperimentArm, reason: str) -> ExperimentArm:
    """Stop serving one arm (a guardrail tripped): its devices go back to rollouts and rules; the page says why."""
    with transaction.atomic():
        locked = ExperimentArm.objects.select_for_update().get(pk=arm.pk)
        if locked.stopped_at is None:
            locked.stopped_at = timezone.now()
            locked.stop_reason = reason
            locked.save()
    return locked


def promote_arm(*, experiment: Experiment, arm: ExperimentArm, user) -> Rollout:
    """Propose a rollout of the winning arm's version to the experiment's target (it goes through approval),
    and stop the experiment if it still runs."""
    if arm.experiment_id != experiment.pk:
        raise Refused(f"arm {arm.pk} is not an arm of experiment {experiment.name}.")
    if arm.is_control:
        raise Refused(
            f"{arm.name} is the control: devices outside the experiment run it already. Stop the experiment instead."
        )
    if arm.stopped_at is not None:
        raise Refused(f"{arm.name} was stopped ({arm.stop_reason}); it cannot be promoted.")
    with transaction.atomic():
        locked = _locked(experiment)
        if locked.promoted_rollout_id is not None:
            raise WrongState(f"experiment {locked.name} already proposed rollout {locked.promoted_rollout_id}.")
        if locked.state == Experiment.State.DRAFT:
            raise WrongState(f"experiment {locked.name} has not started; there is no winner to promote.")
        rollout = propose_rollout(
            model=locked.model, version=arm.version, user=user, target=dict(locked.target), stages=PROMOTION_STAGES
        )
        locked.promoted_rollout = rollout
        if locked.state == Experiment.State.RUNNING:
            locked.state = Experiment.State.STOPPED
            locked.stopped_at = timezone.now()
            locked.stop_reason = f"{arm.name} promoted: rollout {rollout.pk} proposed"
        locked.save()
    return rollout
