"""Events counted per experiment arm: who is enrolled, and each arm's sufficient statistics per day.

When a batch arrives, the device's place in each running experiment of the models it reports about is
computed again (devices.core.experiment_assign, the same function check-in serves from), so no per-device
assignment is stored before the device reports. Its first report while an experiment runs writes its
``ExperimentEnrollment`` (its arm, or none when its type cannot run every arm: ineligible). An event is counted
into the arm's ``ExperimentRollup`` (and its sum over device types and regions, ``ExperimentArmDayRollup``) only
when it is about the arm's version: a device still running what it had before it downloaded the arm says nothing
about the arm.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from console.models import CompatibilityResult, ModelVersion
from devices.core.experiment_assign import IN_ARM, OUTSIDE, ExperimentPlan, assign
from devices.delivery.cache import running_experiments
from devices.models import DeviceEvent, ExperimentArmDayRollup, ExperimentEnrollment, ExperimentRollup
from devices.telemetry.rollups import Group, KeyedGroup, add_to_rows


def device_config(device) -> dict[str, Any]:
    """The targeting configuration of a Device or a DeviceRecord."""
    slug = getattr(device, "device_type_slug", None) or device.device_type.slug
    return {
        "device_id": device.device_id,
        "device_type": slug,
        "region": device.region,
        "app_version": device.app_version,
        "attributes": device.attributes or {},
    }


def runnable_versions(device_type_id: int, version_ids: Iterable[int]) -> set[int]:
    """The versions among ``version_ids`` that are servable and passed their check for the device type."""
    return set(
        CompatibilityResult.objects.filter(
            version_id__in=list(version_ids),
            device_type_id=device_type_id,
            compatible=True,
            version__in=ModelVersion.objects.servable(),
        ).values_list("version_id", flat=True)
    )


def arm_groups(
    device,
    events: Sequence[DeviceEvent],
    plans: Mapping[int, Sequence[ExperimentPlan]],
    can_run: Callable[[int], bool],
) -> tuple[dict[tuple, Group], list[ExperimentEnrollment]]:
    """(experiment id, arm id, day, device type id, region) -> the group of ``events`` counted there, and the
    device's enrollments in the experiments it reported under."""
    config = device_config(device)
    groups: dict[tuple, Group] = defaultdict(Group)
    enrollments = []
    by_model: dict[int, list[DeviceEvent]] = defaultdict(list)
    for event in events:
        if event.model_id is not None and event.version_id is not None:
            by_model[event.model_id].append(event)
    for model_id, model_events in by_model.items():
        for plan in plans.get(model_id, ()):
            found = assign(plan, config, can_run)
            if found.state == OUTSIDE or found.arm is None:
                continue
            in_arm = found.state == IN_ARM
            enrollments.append(
                ExperimentEnrollment(
                    experiment_id=plan.id,
                    arm_id=found.arm.id if in_arm else None,
                    device_id=device.pk,
                    device_type_id=device.device_type_id,
                    region=device.region,
                    enrolled_at=min(event.received_at for event in model_events),
                )
            )
            if not in_arm:
                continue
            for event in model_events:
                if event.version_id == found.arm.version_id:
                    key = (plan.id, found.arm.id, event.at.date(), device.device_type_id, device.region)
                    groups[key].add(event)
    return groups, enrollments


def count_events(device, events: Iterable[DeviceEvent]) -> None:
    """Enroll the device and count ``events`` (new ones only) per arm; inside the transaction storing them."""
    events = list(events)
    model_ids = sorted({event.model_id for event in events if event.model_id is not None and event.version_id})
    if not model_ids:
        return
    plans = running_experiments(model_ids)
    if not plans:
        return
    runnable = runnable_versions(
        device.device_type_id, {arm.version_id for ps in plans.values() for p in ps for arm in p.arms}
    )
    groups, enrollments = arm_groups(device, events, plans, runnable.__contains__)
    ExperimentEnrollment.objects.bulk_create(enrollments, ignore_conflicts=True)
    rows: list[KeyedGroup] = [
        ({"arm_id": arm_id, "day": day, "device_type_id": type_id, "region": region}, {"experiment_id": e_id}, g)
        for (e_id, arm_id, day, type_id, region), g in groups.items()
    ]
    add_to_rows(ExperimentRollup, rows, {})
    add_to_rows(ExperimentArmDayRollup, arm_day_rows(groups), {})


def arm_day_groups(groups: Mapping[tuple, Group]) -> dict[tuple, Group]:
    """``arm_groups``' groups summed over device types and regions: (experiment id, arm id, day) -> group."""
    summed: dict[tuple, Group] = defaultdict(Group)
    for (experiment_id, arm_id, day, _, _), group in groups.items():
        summed[(experiment_id, arm_id, day)].merge(group)
    return summed


def arm_day_rows(groups: Mapping[tuple, Group]) -> list[KeyedGroup]:
    """The ``ExperimentArmDayRollup`` rows ``arm_groups``' groups add to."""
    return [
        ({"arm_id": arm_id, "day": day}, {"experiment_id": experiment_id}, group)
        for (experiment_id, arm_id, day), group in arm_day_groups(groups).items()
    ]
