"""State changes of targeting: rules and a model's default version.

A project whose owners set ``require_approval`` takes no direct change that moves devices: every one of these
refuses, and the message sends the user to propose a rollout (which an approver signs off) instead.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from console.errors import Refused
from console.models import Model, ModelVersion, Project
from devices.models import TargetingRule


class ApprovalRequired(Refused):
    """The project requires approval for changes that move devices: propose a rollout instead."""


def refuse_unapproved_change(project: Project, what: str) -> None:
    """The one place of the project rule "require approval for any change that moves devices"."""
    if project.require_approval:
        raise ApprovalRequired(
            f"Project {project.slug} requires approval for any change that moves devices, so {what} cannot be "
            "changed directly. Propose a rollout of the version instead (Rollouts, on the model's page): an approver "
            "signs it off before devices move."
        )


def create_rule(
    *,
    model: Model,
    version: ModelVersion,
    conditions: dict[str, Any] | None = None,
    priority: int = 100,
    description: str = "",
    user=None,
) -> TargetingRule:
    refuse_unapproved_change(model.project, "targeting rules")
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
    refuse_unapproved_change(rule.model.project, "targeting rules")
    with transaction.atomic():
        for name, value in changes.items():
            setattr(rule, name, value)
        rule.save()
    return rule


def delete_rule(*, rule: TargetingRule) -> None:
    refuse_unapproved_change(rule.model.project, "targeting rules")
    with transaction.atomic():
        rule.delete()


def set_default_version(*, model: Model, version: ModelVersion | None) -> Model:
    refuse_unapproved_change(model.project, f"{model.name}'s default version")
    with transaction.atomic():
        model.default_version = version
        model.save(update_fields=["default_version"])
    return model
