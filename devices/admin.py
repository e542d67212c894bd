from django.contrib import admin

from .models import DeviceType


@admin.register(DeviceType)
class DeviceTypeAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "project", "runtime", "runtime_version", "runtime_build", "max_model_mb"]
    list_filter = ["runtime_build", "project"]
