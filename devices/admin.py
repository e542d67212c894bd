from __future__ import annotations

from django import forms
from django.contrib import admin

from devices.catalog import services as device_type_services
from devices.delivery.cache import invalidate

from .models import DailyRollup, Device, DeviceEvent, DeviceType, FleetSettings, TargetingRule


class NewGenerationOnChange(admin.ModelAdmin):
    """Edits here (interval, revocation, type...) change answers that check-in tickets (devices.tickets)
    give without reading these rows: start a new plan generation of the project."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        invalidate(obj.project_id)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        invalidate(obj.project_id)

    def delete_queryset(self, request, queryset):
        project_ids = set(queryset.values_list("project_id", flat=True))
        super().delete_queryset(request, queryset)
        invalidate(project_ids)


class DeviceTypeForm(forms.ModelForm):
    # The admin gives the model and the fields (ModelAdmin.get_form); this adds the slug rules of the service,
    # so a taken slug is an error on the form rather than a failed save.

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("slug"):
            probe = DeviceType(pk=self.instance.pk, project=cleaned.get("project"), slug=cleaned["slug"])
            message = device_type_services.slug_taken(probe)
            if message:
                self.add_error("slug", message)
        return cleaned


@admin.register(DeviceType)
class DeviceTypeAdmin(admin.ModelAdmin):
    form = DeviceTypeForm
    list_display = ["slug", "name", "project", "runtime", "runtime_version", "runtime_build", "max_model_mb"]
    list_filter = ["runtime_build", "project"]

    def save_model(self, request, obj, form, change):
        # The service keeps the slug rules and re-checks the versions a changed profile concerns.
        device_type_services.save_device_type(obj)


@admin.register(FleetSettings)
class FleetSettingsAdmin(NewGenerationOnChange):
    list_display = ["project", "enrollment_key_prefix", "enrollment_key_rotated_at", "checkin_interval_s"]
    # Secrets stay out of the admin: rotate keys from the fleet page.
    exclude = ["enrollment_key_hash", "signing_key_encrypted", "plan_generation"]
    readonly_fields = ["project", "enrollment_key_prefix", "enrollment_key_rotated_at", "public_key"]


@admin.register(Device)
class DeviceAdmin(NewGenerationOnChange):
    list_display = ["device_id", "project", "device_type", "region", "app_version", "last_seen_at", "revoked_at"]
    list_filter = ["project", "device_type", "region"]
    search_fields = ["device_id"]
    exclude = ["token_hash", "delivery_digest"]
    readonly_fields = ["project", "device_id", "config", "fingerprint", "enrolled_at", "last_seen_at"]


@admin.register(TargetingRule)
class TargetingRuleAdmin(admin.ModelAdmin):
    list_display = ["id", "model", "priority", "version", "description"]
    list_filter = ["model__project"]


@admin.register(DeviceEvent)
class DeviceEventAdmin(admin.ModelAdmin):
    list_display = ["at", "device", "type", "model", "version", "reason"]
    list_filter = ["type", "project"]
    search_fields = ["device__device_id", "event_id"]


@admin.register(DailyRollup)
class DailyRollupAdmin(admin.ModelAdmin):
    list_display = [
        "day",
        "version",
        "device_type",
        "region",
        "download_completed",
        "install_succeeded",
        "install_failed",
        "inference_count",
    ]
    list_filter = ["project", "day"]
