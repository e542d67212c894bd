"""Which device types a project sees, for pickers and filters."""

from __future__ import annotations

from devices.models import DeviceType


def device_type_slugs(project) -> list[str]:
    return list(DeviceType.objects.visible_to(project).order_by("slug").values_list("slug", flat=True))
