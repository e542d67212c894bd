"""Whatever resolution reads changed: new plan generation for the projects concerned (see devices.plans)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from console.models import CompatibilityResult, Model, ModelVersion
from devices.delivery.cache import bump_plan_generation

from .models import DeviceType, TargetingRule


@receiver([post_save, post_delete], sender=TargetingRule)
def rule_changed(sender, instance: TargetingRule, **kwargs) -> None:
    bump_plan_generation(project__models__id=instance.model_id)


@receiver([post_save, post_delete], sender=Model)
def model_changed(sender, instance: Model, **kwargs) -> None:
    bump_plan_generation(project_id=instance.project_id)


@receiver([post_save, post_delete], sender=ModelVersion)
def version_changed(sender, instance: ModelVersion, **kwargs) -> None:
    bump_plan_generation(project__models__id=instance.model_id)


@receiver([post_save, post_delete], sender=CompatibilityResult)
def compatibility_changed(sender, instance: CompatibilityResult, **kwargs) -> None:
    bump_plan_generation(project__models__versions__id=instance.version_id)


@receiver([post_save, post_delete], sender=DeviceType)
def device_type_changed(sender, instance: DeviceType, **kwargs) -> None:
    if instance.project_id is None:
        bump_plan_generation()  # a built-in type is shared by every project
    else:
        bump_plan_generation(project_id=instance.project_id)
