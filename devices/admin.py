from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from console.errors import Refused
from devices.catalog import services as device_type_services
from devices.delivery.cache import invalidate
from devices.rollouts import services as rollout_services
from devices.rules import services as rules_services

from .models import DailyRollup, Device, DeviceEvent, DeviceType, FleetSettings, Rollout, RolloutApproval, TargetingRule


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


class TargetingRuleAdminForm(forms.ModelForm):
    class Meta:
        model = TargetingRule
        fields = ["model", "priority", "version", "conditions", "description", "created_by"]

    def clean(self):
        data = super().clean()
        model = data.get("model") if data else None
        try:  # the project's rule, as on pages and API: changes that move devices may need an approved rollout
            if model is not None:
                rules_services.refuse_unapproved_change(model.project, "targeting rules")
            if self.instance.pk is not None and self.instance.model_id != getattr(model, "pk", None):
                rules_services.refuse_unapproved_change(self.instance.model.project, "targeting rules")
        except Refused as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


@admin.register(TargetingRule)
class TargetingRuleAdmin(admin.ModelAdmin):
    form = TargetingRuleAdminForm
    list_display = ["id", "model", "priority", "version", "description"]
    list_filter = ["model__project"]

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.model.project.require_approval:
            return False
        return super().has_delete_permission(request, obj)


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


class RolloutDecisionForm(forms.ModelForm):
    """The admin's only change to a rollout: a decision with a comment, under the same four-eyes rule as the API
    (``rollout_services.approval_refusal``); the plan itself is read-only here."""

    decision = forms.ChoiceField(
        choices=[("", "(no decision)"), *RolloutApproval.Decision.choices], required=False, label="Decision"
    )
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    user = None  # the signed-in user, set by RolloutAdmin.get_form

    class Meta:
        model = Rollout
        fields: list[str] = []

    def clean(self):
        cleaned = super().clean()
        decision = cleaned.get("decision")
        if decision:
            refusal = rollout_services.approval_refusal(self.instance, self.user)
            if refusal:
                raise forms.ValidationError(refusal)
            if self.instance.state != Rollout.State.PENDING_APPROVAL:
                raise forms.ValidationError(f"Rollout {self.instance.pk} is not pending approval.")
            if decision == RolloutApproval.Decision.REJECT and not cleaned.get("comment", "").strip():
                self.add_error("comment", "Say why in a comment when rejecting.")
        return cleaned


class RolloutApprovalInline(admin.TabularInline):
    model = RolloutApproval
    fields = readonly_fields = ("approver", "decision", "comment", "fingerprint", "created_at")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Rollout)
class RolloutAdmin(admin.ModelAdmin):
    form = RolloutDecisionForm
    list_display = ["id", "model", "version", "state", "current_stage", "proposer", "created_at"]
    list_filter = ["state", "project"]
    inlines = [RolloutApprovalInline]
    readonly_fields = [
        "project",
        "model",
        "version",
        "previous_version",
        "target",
        "stages",
        "max_download_failure_rate",
        "max_install_failure_rate",
        "max_latency_regression",
        "min_devices_per_stage",
        "max_devices_per_minute",
        "rate_growth_factor",
        "state",
        "proposer",
        "last_edited_by",
        "current_stage",
        "submitted_at",
        "started_at",
        "stage_started_at",
        "ended_at",
        "halt_reason",
    ]

    def has_add_permission(self, request):
        return False  # rollouts are proposed through the API or the pages, where the plan is checked

    def has_delete_permission(self, request, obj=None):
        return obj is not None and obj.state == Rollout.State.DRAFT  # a rollout that was asked about stays

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user
        return form

    def save_model(self, request, obj, form, change):
        # Never obj.save(): the plan does not change here, and a decision goes through the service (its lock
        # and its checks again).
        decision, comment = form.cleaned_data.get("decision"), form.cleaned_data.get("comment", "")
        if not decision:
            return
        decide = (
            rollout_services.approve_rollout
            if decision == RolloutApproval.Decision.APPROVE
            else rollout_services.reject_rollout
        )
        try:
            decide(rollout=obj, user=request.user, comment=comment)
        except Refused as exc:
            messages.error(request, str(exc))
