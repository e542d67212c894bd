"""Fleet queries shared by the fleet page and the API: filtering devices and desired-vs-actual summaries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypedDict, cast

from django.db.models import Count, F, Prefetch, Q, QuerySet
from django.utils import timezone

from console.models import Project
from devices.models import FELL_BACK_RESOLUTIONS, RUNNING, Device, DeviceModelState

LAST_SEEN_WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}


def filtered_devices(project: Project, filters: dict[str, Any]) -> QuerySet[Device]:
    """Devices of ``project`` matching validated ``FleetFilterSerializer`` data, with their model states."""
    devices = Device.objects.filter(project=project).select_related("device_type")
    if filters.get("device_type"):
        devices = devices.filter(device_type__slug=filters["device_type"])
    if filters.get("region"):
        devices = devices.filter(region=filters["region"])
    if filters.get("app_version"):
        devices = devices.filter(app_version=filters["app_version"])
    if filters.get("q"):
        devices = devices.filter(device_id__icontains=filters["q"])
    if filters.get("revoked") is not None:
        devices = devices.filter(revoked_at__isnull=not filters["revoked"])
    last_seen = filters.get("last_seen")
    if last_seen in LAST_SEEN_WINDOWS:
        devices = devices.filter(last_seen_at__gte=timezone.now() - LAST_SEEN_WINDOWS[last_seen])
    elif last_seen == "stale":
        devices = devices.filter(
            Q(last_seen_at__lt=timezone.now() - LAST_SEEN_WINDOWS["7d"]) | Q(last_seen_at__isnull=True)
        )
    if filters.get("model"):
        states = DeviceModelState.objects.filter(model__project=project, model__name=filters["model"])
        if filters.get("version"):
            states = states.filter(installed_version__number=filters["version"])
        if filters.get("delivery") == "behind":
            states = states.exclude(desired_version=None).filter(
                Q(installed_version=None) | ~Q(installed_version=F("desired_version"))
            )
        elif filters.get("delivery") == "fell_back":
            states = states.filter(resolution__in=FELL_BACK_RESOLUTIONS)
        devices = devices.filter(pk__in=states.values("device_id"))
    return devices.prefetch_related(model_states_with_versions())


def model_states_with_versions() -> Prefetch:
    """A device's ``model_states`` with what the fleet shows of each, in the prefetch query itself."""
    return Prefetch(
        "model_states",
        queryset=DeviceModelState.objects.select_related("model", "desired_version", "installed_version"),
    )


class DeliverySummaryRow(TypedDict):
    """One model's line of the fleet page's delivery summary: device counts by how delivery stands."""

    model__name: str
    devices: int
    up_to_date: int
    fell_back: int
    behind: int
    failed: int
    nothing: int


def delivery_summary(project: Project) -> list[DeliverySummaryRow]:
    """Per model: devices up to date, behind, fell back (for compatibility), failed, with nothing to install."""
    fell_back = Q(resolution__in=FELL_BACK_RESOLUTIONS)
    in_sync = Q(installed_version=F("desired_version"), installed_state=RUNNING)
    states = DeviceModelState.objects.filter(model__project=project, device__revoked_at=None).values("model__name")
    # django-stubs takes an annotation named like a model property (up_to_date, fell_back) for a redefinition of
    # it and leaves it out of the row type; these rows are dicts, so nothing is shadowed, hence the ignore and cast.
    rows = states.annotate(  # type: ignore[no-redef]
        devices=Count("id"),
        up_to_date=Count("id", filter=in_sync & ~fell_back & Q(desired_version__isnull=False)),
        fell_back=Count("id", filter=fell_back),
        behind=Count("id", filter=Q(desired_version__isnull=False) & ~in_sync),
        failed=Count("id", filter=Q(installed_state="failed")),
        nothing=Count("id", filter=Q(desired_version__isnull=True) & ~fell_back),
    ).order_by("model__name")
    return cast(list[DeliverySummaryRow], list(rows))


def filter_choices(project: Project) -> dict[str, list]:
    """Values present in the fleet, for the filter drop-downs."""
    devices = Device.objects.filter(project=project)
    return {
        "device_types": list(
            devices.order_by("device_type__slug").values_list("device_type__slug", flat=True).distinct()
        ),
        "regions": list(devices.exclude(region="").order_by("region").values_list("region", flat=True).distinct()),
        "app_versions": list(devices.order_by("app_version").values_list("app_version", flat=True).distinct()),
    }
