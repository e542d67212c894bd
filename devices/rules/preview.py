"""The rules preview: which rule wins for a sample configuration and why, and what each rule matches now."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devices.core.resolution import DeviceFacts, ModelPlan, resolve_model
from devices.core.targeting.match import resolve, rule_matches
from devices.core.targeting.shadow import shadowed_rules
from devices.models import Device, DeviceType

# Counting walks devices x candidate rules in Python; a page view looks at this many devices at most.
MAX_SAMPLE = 20_000

def sample_facts(sample: dict[str, Any], device_type: DeviceType) -> DeviceFacts:
    """Resolution facts for a validated ``PreviewSerializer`` sample."""
    return DeviceFacts(device_id=sample["device_id"], device_type_id=device_type.pk, device_type=device_type.slug,
                       region=sample["region"], app_version=sample["app_version"], attributes=sample["attributes"])


def explain(plan: ModelPlan, facts: DeviceFacts) -> dict[str, Any]:
    """Every rule's verdict in evaluation order, and what a check-in of this device would get."""
    _, explanations = resolve(plan.rules, facts.targeting_config())
    outcome = resolve_model(plan, facts)
    return {
        "rules": [item.as_dict() for item in explanations],
        "status": outcome.status,
        "resolution": outcome.resolution,
        "reason": outcome.reason,
        "version": plan.versions[outcome.version_id].number if outcome.version_id else None,
    }


@dataclass
class MatchCounts:
    devices: int = 0  # enrolled, not revoked
    sampled: int = 0
    matches: dict[Any, int] = field(default_factory=dict)  # rule id -> devices whose conditions hold
    wins: dict[Any, int] = field(default_factory=dict)  # rule id -> devices it is the first match for
    unmatched: int = 0  # devices no rule matches (they get the default version, if any)

    def as_dict(self) -> dict[str, Any]:
        return {"devices": self.devices, "sampled": self.sampled, "unmatched": self.unmatched,
                "rules": {str(rule): {"matches": self.matches[rule], "wins": self.wins[rule]} for rule in self.matches}}


def count_matches(project_id: int, plan: ModelPlan) -> MatchCounts:
    """How many enrolled devices each rule matches and wins now (the oldest MAX_SAMPLE when there are more)."""
    devices = Device.objects.filter(project_id=project_id, revoked_at=None)
    counts = MatchCounts(devices=devices.count(), matches={rule.id: 0 for rule in plan.rules},
                         wins={rule.id: 0 for rule in plan.rules})
    rows = devices.order_by("pk").values_list("device_id", "device_type__slug", "region", "app_version",
                                              "attributes")[:MAX_SAMPLE]
    for device_id, device_type, region, app_version, attributes in rows.iterator(chunk_size=2000):
        counts.sampled += 1
        config = {"device_id": device_id, "device_type": device_type, "region": region,
                  "app_version": app_version, "attributes": attributes}
        won = False
        # Rules for other device types or regions cannot match: only the candidates are asked.
        for rule in plan.rules_for(device_type, region.upper()):
            if rule_matches(rule, config)[0]:
                counts.matches[rule.id] += 1
                if not won:
                    counts.wins[rule.id] += 1
                    won = True
        counts.unmatched += not won
    return counts


def shadowing(plan: ModelPlan) -> dict[Any, Any]:
    return shadowed_rules(plan.rules)
