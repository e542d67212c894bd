"""Whatever resolution reads changed: a new plan generation for the projects concerned (devices.delivery.cache).

Every model resolution reads declares it with a ``console.models.DeliveryInputQuerySet`` as its default
manager: its bulk writes announce themselves (``delivery_inputs_changed``), and ``connect`` below hooks the
saves and deletes of the same models, so declaring the queryset is all a new such model needs.
"""

from __future__ import annotations

from django.apps import apps
from django.db import models
from django.db.models.signals import post_delete, post_save

from console.models import DeliveryInputQuerySet, delivery_inputs_changed
from devices.delivery.cache import invalidate


def delivery_input_models() -> list[type[models.Model]]:
    """The models whose default manager is a DeliveryInputQuerySet."""
    return [
        model for model in apps.get_models() if isinstance(model._default_manager.get_queryset(), DeliveryInputQuerySet)
    ]


def inputs_changed(sender, project_ids, **kwargs) -> None:
    invalidate(project_ids)


def row_saved(sender, instance, update_fields=None, **kwargs) -> None:
    rows = sender._default_manager.get_queryset()
    if update_fields is None or rows.touches(update_fields):
        invalidate(rows.projects_of([instance]))


def row_deleted(sender, instance, **kwargs) -> None:
    invalidate(sender._default_manager.get_queryset().projects_of([instance]))


def connect() -> None:
    delivery_inputs_changed.connect(inputs_changed, dispatch_uid="devices.inputs_changed")
    for model in delivery_input_models():
        post_save.connect(row_saved, sender=model, dispatch_uid=f"devices.saved.{model._meta.label}")
        post_delete.connect(row_deleted, sender=model, dispatch_uid=f"devices.deleted.{model._meta.label}")


connect()  # devices.apps imports this module from ready(), when every model is loaded
