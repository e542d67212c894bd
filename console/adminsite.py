"""Django's admin, answering a signed-in member who is not staff with "not allowed" instead of a second sign-in
form (which reads as if their password had not worked)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.shortcuts import render


class ConsoleAdminSite(admin.AdminSite):
    def login(self, request, extra_context=None):
        if request.user.is_authenticated and not self.has_permission(request):
            reason = (
                f"You are signed in as {request.user.get_username()}; the admin is for the console's staff only. "
                "Projects, models and devices are managed from your projects' pages."
            )
            return render(request, "403.html", {"exception": reason}, status=403)
        return super().login(request, extra_context)


class ConsoleAdminConfig(AdminConfig):
    default_site = "console.adminsite.ConsoleAdminSite"
