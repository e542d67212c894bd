from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "project", "state", "progress", "attempts", "created_at"]
    list_filter = ["state", "kind"]
    readonly_fields = ["log", "result"]
