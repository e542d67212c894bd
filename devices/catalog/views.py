"""Page: the device types a project sees."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import render

from console.projects.permissions import PROJECT, scoped_page
from devices.models import DeviceType


@scoped_page(PROJECT)
def device_types_page(request, access, project):
    if request.method == "POST":
        messages.info(request, "Add device types through the API or the admin.")
    return render(
        request,
        "console/device_types.html",
        {
            "project": access.project,
            "membership": access.membership,
            "device_types": DeviceType.objects.visible_to(access.project),
        },
    )
