"""The rules preview: which rule wins for a sample configuration and why, and what each rule matches now."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max

from devices.core.resolution import DeviceFacts, ModelPlan, resolve_model
from devices.core.targeting.match import resolve, rule_matches
from devices.core.targeting.rules import Rule
from devices.core.targeting.shadow import shadowed_rules
from devices.models import Device, DeviceType, TargetingRule

# Counting asks the database for the fleet's distinct configurations (device type, region, app version,
# attributes) with how many devices share each, and evaluates the rules once per configuration: at most this
# many, the commonest first.
MAX_CONFIGURATIONS = 5_000
# A rule that splits a percentage by device id gives devices of one configuration different answers, so while
# the model has one, counting walks devices instead, at most this many (the oldest).
MAX_SAMPLE = 20_000
# Counts are kept in Django's cache this long, under the model's rules and the fleet's size: a page view or
# preview in between reads them from there; enrolling or revoking a device or changing a rule counts again.
COUNTS_CACHE_S = 60


def sample_facts(sample: dict[str, Any], device_type: DeviceType) -> DeviceFacts:
    """Resolution facts for a validated ``PreviewSerializer`` sample."""
    return DeviceFacts(
        device_id=sample["device_id"],
        device_type_id=device_type.pk,
        device_type=device_type.slug,
        region=sample["region"],
        app_version=sample["app_version"],
        attributes=sample["attributes"],
    )


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
    sampled: int = 0  # devices counted (fewer than ``devices`` only past the bounds)
    matches: dict[Any, int] = field(default_factory=dict)  # rule id -> devices whose conditions hold
    wins: dict[Any, int] = field(default_factory=dict)  # rule id -> devices it is the first match for
    unmatched: int = 0  # devices no rule matches (they get the default version, if any)

    def as_dict(self) -> dict[str, Any]:
        return {
            "devices": self.devices,
            "sampled": self.sampled,
            "unmatched": self.unmatched,
            "rules": {str(rule): {"matches": self.matches[rule], "wins": self.wins[rule]} for rule in self.matches},
        }


def count_matches(project_id: int, plan: ModelPlan) -> MatchCounts:
    """How many enrolled devices each rule of ``plan`` matches and wins now (see MAX_CONFIGURATIONS,
    MAX_SAMPLE and COUNTS_CACHE_S for the bounds)."""
    devices = Device.objects.filter(project_id=project_id, revoked_at=None)
    fleet = devices.aggregate(size=Count("pk"), newest=Max("pk"))
    key = (
        "rules-preview-counts:"
        + hashlib.sha256(repr((project_id, plan.model_id, fleet, tuple(plan.rules))).encode()).hexdigest()
    )
    counts = cache.get(key)
    if counts is None:
        counts = MatchCounts(
            devices=fleet["size"], matches={rule.id: 0 for rule in plan.rules}, wins={rule.id: 0 for rule in plan.rules}
        )
        if any(_splits_by_device_id(rule) for rule in plan.rules):
            rows = devices.order_by("pk").values_list("device_id", *CONFIGURATION)[:MAX_SAMPLE]
            for device_id, device_type, region, app_version, attributes in rows.iterator(chunk_size=2000):
                _tally(
                    counts,
                    plan,
                    {
                        "device_id": device_id,
                        "device_type": device_type,
                        "region": region,
                        "app_version": app_version,
                        "attributes": attributes,
                    },
                    1,
                )
        else:
            configurations = (
                devices.values(*CONFIGURATION).annotate(size=Count("pk")).order_by("-size")[:MAX_CONFIGURATIONS]
            )
            for row in configurations:
                _tally(
                    counts,
                    plan,
                    {
                        "device_type": row["device_type__slug"],
                        "region": row["region"],
                        "app_version": row["app_version"],
                        "attributes": row["attributes"],
                    },
                    row["size"],
                )
        cache.set(key, counts, COUNTS_CACHE_S)
    return counts


CONFIGURATION = ("device_type__slug", "region", "app_version", "attributes")


def _splits_by_device_id(rule: Rule) -> bool:
    return rule.conditions.percentage is not None and rule.conditions.bucket_by == "device_id"


def _tally(counts: MatchCounts, plan: ModelPlan, config: dict[str, Any], devices: int) -> None:
    """Count ``devices`` devices of configuration ``config`` against the rules that may hold for it."""
    counts.sampled += devices
    won = False
    # Rules for other device types or regions cannot match: only the candidates are asked.
    for rule in plan.rules_for(config["device_type"], config["region"].upper()):
        if rule_matches(rule, config)[0]:
            counts.matches[rule.id] += devices
            if not won:
                counts.wins[rule.id] += devices
                won = True
    if not won:
        counts.unmatched += devices


def rule_of(rule: TargetingRule) -> Rule:
    """A stored rule as resolution reads it."""
    return Rule.from_dict(
        {"id": rule.pk, "priority": rule.priority, "version": rule.version_id, "conditions": rule.conditions}
    )


def rules_of(model) -> list[Rule]:
    """The model's targeting rules as resolution reads them (one query), e.g. for ``shadowing``."""
    return [
        rule_of(rule)
        for rule in TargetingRule.objects.filter(model=model).only("id", "priority", "version_id", "conditions")
    ]


def rules_plan(model, rules: Iterable[Rule]) -> ModelPlan:
    """A plan of the model's rules alone (no versions): all that ``count_matches`` and ``shadowing`` read, without
    the version and compatibility queries of a full plan."""
    return ModelPlan(
        model_id=model.pk, name=model.name, rules=tuple(rules), default_version_id=None, versions={}, children={}
    )


def shadowing(rules: Iterable[Rule]) -> dict[Any, Any]:
    """``{rule id: id of the earlier rule that hides it for every device}``."""
    return shadowed_rules(rules)
