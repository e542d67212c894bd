"""State changes of targeting: rules and a model's default version."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from console.models import Model, ModelVersion
from devices.models import TargetingRule


def create_rule(
    *,
    model: Model,
    version: ModelVersion,
    conditions: dict[str, Any] | None = None,
    priority: int = 100,
    description: str = "",
    user=None,
) -> TargetingRule:
    with transaction.atomic():
        return TargetingRule.objects.create(
            model=model,
            version=version,
            conditions=conditions or {},
            priority=priority,
            description=description,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )


def update_rule(*, rule: TargetingRule, **changes: Any) -> TargetingRule:
    with transaction.atomic():
        for name, value in changes.items():
            setattr(rule, name, value)
        rule.save()
    return rule


def delete_rule(*, rule: TargetingRule) -> None:
    with transaction.atomic():
        rule.delete()


def set_default_version(*, model: Model, version: ModelVersion | None) -> Model:
    with transaction.atomic():
        model.default_version = version
        model.save(update_fields=["default_version"])
    return model
