"""What a change that moves devices would do where the version cannot run: the one place of this warning.

A rule, a default version or a rollout points a version at a target. For every targeted device type that cannot
run the version (its compatibility row says no, it was never checked against it, or the version is not ready)
this says how many enrolled devices it concerns and what they get instead, with resolution's own rule
(``devices.core.resolution``: the closest runnable variant derived from the version, else nothing new). Pages
show it before saving; the API asks for ``confirm``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Count

from devices.core.resolution import DeviceFacts, ModelPlan, closest_runnable_descendant, why_not_runnable
from devices.core.targeting.match import rule_matches
from devices.core.targeting.rules import Rule
from devices.delivery.cache import load_model_plans
from devices.models import Device, DeviceType

# Devices are counted by distinct configuration (type, region, app version, attributes), the commonest first,
# as the rules preview counts them; past this many configurations the rest are not counted.
MAX_CONFIGURATIONS = 5_000
# A percentage split does not change which device types a target reaches: it is left out of the match.
SPLIT_KEYS = ("percentage", "bucket_by", "salt")


@dataclass(frozen=True)
class Blocked:
    """A targeted device type that cannot run the version."""

    device_type: str  # slug
    reason: str  # resolution's clause: "cannot run on raspberry-pi-4 (opset 21 ...)"
    devices: int  # enrolled devices of this type the target reaches now
    instead: int | None  # number of the compatible variant they get, or None: nothing new
    split: float | None = None  # the rule's percentage, when it splits: only that share of ``devices`` is picked

    @property
    def sentence(self) -> str:
        share = f" (the rule's {self.split:g}% split picks about that share of them)" if self.split is not None else ""
        who = f"{self.devices} enrolled device{'s' if self.devices != 1 else ''} of that type{share}"
        verb = "gets" if self.devices == 1 else "get"
        if self.instead is not None:
            gets = f"{verb} version {self.instead}, a compatible variant derived from it, instead"
        else:
            gets = f"{verb} nothing new: they keep what they have installed (nothing, if they have none)"
        return f"{self.device_type}: the version {self.reason}; {who} {gets}."


def for_target(model, version, target: Mapping[str, Any] | None) -> list[Blocked]:
    """Device types ``target`` (a rule's or rollout's conditions) reaches that cannot run ``version``."""
    target = dict(target or {})
    named = list(target.get("device_types") or [])
    conditions = {key: value for key, value in target.items() if key not in SPLIT_KEYS}
    rule = Rule.from_dict({"id": 0, "priority": 0, "version": version.pk, "conditions": conditions})
    split = target.get("percentage")
    return _blocked(model, version, lambda plan, config: rule_matches(rule, config)[0], named, split)


def for_default(model, version) -> list[Blocked]:
    """Device types that no rule of ``model`` matches (so they get its default version) and cannot run ``version``."""

    def unmatched(plan: ModelPlan, config: dict[str, Any]) -> bool:
        return not any(rule_matches(r, config)[0] for r in plan.rules_for(config["device_type"], config["region"]))

    return _blocked(model, version, unmatched, [], None)


def _blocked(
    model,
    version,
    reaches: Callable[[ModelPlan, dict[str, Any]], bool],
    named: list[str],
    split: float | None,
) -> list[Blocked]:
    if version is None:
        return []
    plan = load_model_plans(model.project_id, [model.name])[model.name]
    reached: dict[tuple[int, str], int] = defaultdict(int)
    configurations = (
        Device.objects.filter(project_id=model.project_id, revoked_at=None)
        .values("device_type_id", "device_type__slug", "region", "app_version", "attributes")
        .annotate(size=Count("pk"))
        .order_by("-size")[:MAX_CONFIGURATIONS]
    )
    for row in configurations:
        config = {
            "device_type": row["device_type__slug"],
            "region": row["region"].upper(),
            "app_version": row["app_version"],
            "attributes": row["attributes"],
        }
        if reaches(plan, config):
            reached[(row["device_type_id"], row["device_type__slug"])] += row["size"]
    for device_type_id, slug in (
        DeviceType.objects.visible_to(model.project_id).filter(slug__in=named).values_list("pk", "slug")
    ):
        reached.setdefault((device_type_id, slug), 0)
    blocked = []
    for (device_type_id, slug), devices in sorted(reached.items(), key=lambda item: item[0][1]):
        device = DeviceFacts(
            device_id="", device_type_id=device_type_id, device_type=slug, region="", app_version="", attributes={}
        )
        reason = why_not_runnable(plan.versions.get(version.pk), device)
        if reason is None:
            continue
        variant = closest_runnable_descendant(plan, version.pk, device)
        blocked.append(Blocked(slug, reason, devices, variant.number if variant else None, split))
    return blocked


def sentences(blocked: list[Blocked]) -> list[str]:
    return [item.sentence for item in blocked]


def confirm_message(version_number: int, blocked: list[Blocked]) -> str:
    """Why a change waits for confirmation (pages and API say the same)."""
    types = ", ".join(item.device_type for item in blocked)
    devices = sum(item.devices for item in blocked)
    return (
        f"Version {version_number} cannot run on {types} ({devices} enrolled device{'s' if devices != 1 else ''}). "
        "Narrow the target to device types that run it, pick a compatible version, or confirm to save anyway."
    )
