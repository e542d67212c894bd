"""Page: the device types a project sees."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from console.projects import access
from devices.models import DeviceType


@login_required
def device_types_page(request, project):
    project_obj, membership = access.project_for(request.user, project)
    device_types = DeviceType.objects.visible_to(project_obj)
    if request.method == "POST":
        messages.info(request, "Add device types through the API or the admin.")
    return render(request, "console/device_types.html", {
        "project": project_obj, "membership": membership, "device_types": device_types,
    })
