"""Fleet pages: the device list with its funnel, and one device's page."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from console.projects import roles
from console.projects.permissions import DEVICE, PROJECT, scoped_page
from devices.fleet import services as fleet_services
from devices.fleet.queries import delivery_summary, filter_choices, filtered_devices
from devices.fleet.serializers import LAST_SEEN_CHOICES, FleetFilterSerializer
from devices.telemetry.rollups import FUNNEL_DAYS, funnel_by_version, recent_rollups

PAGE_SIZE = 50
HISTORY_SIZE = 100


@require_http_methods(["GET", "POST"])
@scoped_page(PROJECT, required_role={"POST": roles.MANAGE})
def fleet_page(request, access, project):
    project_obj = access.project
    fleet = fleet_services.fleet_settings_for(project_obj)
    new_key = None
    if request.method == "POST":
        if request.POST.get("action") == "rotate_key":
            fleet, new_key = fleet_services.rotate_enrollment_key(project=project_obj)
        elif request.POST.get("action") == "interval":
            seconds = request.POST.get("checkin_interval_s", "")
            if seconds.isdigit() and 1 <= int(seconds) <= 86400:
                fleet_services.set_project_checkin_interval(fleet=fleet, seconds=int(seconds))
                messages.info(request, f"Devices now check in every {seconds} s unless set per device.")
                return redirect("fleet", project=project)
            messages.error(request, "Give the check-in interval in whole seconds, 1 to 86400.")
    filters = FleetFilterSerializer(data=request.GET)
    valid = filters.is_valid()
    devices = filtered_devices(project_obj, filters.validated_data if valid else {})
    page = Paginator(devices, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "devices/fleet.html",
        {
            "project": project_obj,
            "membership": access.membership,
            "fleet": fleet,
            "new_key": new_key,
            "can_manage": access.may(roles.MANAGE),
            "page": page,
            "query": query.urlencode(),
            "filters": request.GET,
            "filter_errors": filters.errors if not valid else {},
            "choices": filter_choices(project_obj),
            "summary": delivery_summary(project_obj),
            "models": project_obj.models.select_related("default_version"),
            "funnel": funnel_by_version(recent_rollups(project=project_obj)),
            "funnel_days": FUNNEL_DAYS,
            "last_seen_choices": LAST_SEEN_CHOICES,
        },
    )


@require_http_methods(["GET", "POST"])
@scoped_page(DEVICE)
def device_page(request, access, project, device_id):
    project_obj, device = access.project, access.device
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            fleet_services.revoke_device(device=device, user=request.user)
            messages.info(request, f"Device {device.device_id} is revoked; its token no longer works.")
        elif request.POST.get("action") == "interval":
            seconds = request.POST.get("checkin_interval_s", "").strip()
            if seconds == "" or (seconds.isdigit() and 1 <= int(seconds) <= 86400):
                fleet_services.set_device_checkin_interval(device=device, seconds=int(seconds) if seconds else None)
            else:
                messages.error(request, "Give the check-in interval in whole seconds, 1 to 86400 (empty: project's).")
        return redirect("device", project=project, device_id=device.device_id)
    return render(
        request,
        "devices/device.html",
        {
            "project": project_obj,
            "membership": access.membership,
            "device": device,
            "can_change": access.may(roles.CHANGE),
            "states": device.model_states.select_related("model", "desired_version", "installed_version"),
            "events": device.events.select_related("model", "version")[:HISTORY_SIZE],
            "fleet": fleet_services.fleet_settings_for(project_obj),
        },
    )
