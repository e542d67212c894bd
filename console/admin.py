from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin

from .models import ApiToken, CompatibilityResult, Membership, Model, ModelVersion, Project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "require_approval", "created_at"]
    inlines = [MembershipInline]


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]
    list_filter = ["project"]

    def get_readonly_fields(self, request, obj=None):
        # A project that requires approval moves devices only through an approved rollout (devices.rules.services).
        if obj is not None and obj.project.require_approval:
            return [*super().get_readonly_fields(request, obj), "default_version"]
        return super().get_readonly_fields(request, obj)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["model", "number", "state", "size_bytes", "transform", "created_at"]
    list_filter = ["state", "model__project"]
    readonly_fields = ["sha256", "size_bytes", "file", "metadata", "metrics"]


@admin.register(CompatibilityResult)
class CompatibilityResultAdmin(admin.ModelAdmin):
    list_display = ["version", "device_type", "compatible"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at"]
    readonly_fields = ["token_hash", "prefix"]


# The audit log is read-only for everyone, superusers included: auditlog's own admin allows deletes reached
# through another object's delete page, so it is replaced by one that refuses every write.
admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class ReadOnlyLogEntryAdmin(LogEntryAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
