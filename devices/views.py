"""Fleet and delivery pages. Lookups go through console.access like the API."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from console import access, roles

from . import preview, services
from .fleet import delivery_summary, filter_choices, filtered_devices
from .forms import PreviewForm, RuleForm
from .models import DailyRollup, DeviceType, TargetingRule
from .plans import load_model_plans
from .rollups import funnel_by_version
from .serializers import LAST_SEEN_CHOICES, FleetFilterSerializer, PreviewSerializer

FUNNEL_DAYS = 14
PAGE_SIZE = 50
HISTORY_SIZE = 100


def _recent_rollups(**scope):
    return DailyRollup.objects.filter(day__gte=timezone.now().date() - timedelta(days=FUNNEL_DAYS - 1), **scope)


def _device_type_slugs(project) -> list[str]:
    return list(DeviceType.objects.visible_to(project).order_by("slug")
                .values_list("slug", flat=True))


@login_required
@require_http_methods(["GET", "POST"])
def fleet_page(request, project):
    project_obj, membership = access.project_for(request.user, project)
    fleet = services.fleet_settings_for(project_obj)
    new_key = None
    if request.method == "POST":
        access.project_for(request.user, project, roles.MANAGE)
        if request.POST.get("action") == "rotate_key":
            fleet, new_key = services.rotate_enrollment_key(project=project_obj)
        elif request.POST.get("action") == "interval":
            seconds = request.POST.get("checkin_interval_s", "")
            if seconds.isdigit() and 1 <= int(seconds) <= 86400:
                services.set_project_checkin_interval(fleet=fleet, seconds=int(seconds))
                messages.info(request, f"Devices now check in every {seconds} s unless set per device.")
                return redirect("fleet", project=project)
            messages.error(request, "Give the check-in interval in whole seconds, 1 to 86400.")
    filters = FleetFilterSerializer(data=request.GET)
    valid = filters.is_valid()
    devices = filtered_devices(project_obj, filters.validated_data if valid else {})
    page = Paginator(devices, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "devices/fleet.html", {
        "project": project_obj, "membership": membership, "fleet": fleet, "new_key": new_key,
        "can_manage": access.can(membership, roles.MANAGE), "page": page, "query": query.urlencode(),
        "filters": request.GET, "filter_errors": filters.errors if not valid else {},
        "choices": filter_choices(project_obj), "summary": delivery_summary(project_obj),
        "models": project_obj.models.select_related("default_version"),
        "funnel": funnel_by_version(_recent_rollups(project=project_obj)), "funnel_days": FUNNEL_DAYS,
        "last_seen_choices": LAST_SEEN_CHOICES,
    })


@login_required
@require_http_methods(["GET", "POST"])
def device_page(request, project, device_id):
    project_obj, membership = access.project_for(request.user, project)
    device = get_object_or_404(project_obj.devices.select_related("device_type"), device_id=device_id)
    if request.method == "POST":
        access.project_for(request.user, project, roles.CHANGE)
        if request.POST.get("action") == "revoke":
            services.revoke_device(device=device, user=request.user)
            messages.info(request, f"Device {device.device_id} is revoked; its token no longer works.")
        elif request.POST.get("action") == "interval":
            seconds = request.POST.get("checkin_interval_s", "").strip()
            if seconds == "" or (seconds.isdigit() and 1 <= int(seconds) <= 86400):
                services.set_device_checkin_interval(device=device, seconds=int(seconds) if seconds else None)
            else:
                messages.error(request, "Give the check-in interval in whole seconds, 1 to 86400 (empty: project's).")
        return redirect("device", project=project, device_id=device.device_id)
    return render(request, "devices/device.html", {
        "project": project_obj, "membership": membership, "device": device,
        "can_change": access.can(membership, roles.CHANGE),
        "states": device.model_states.select_related("model", "desired_version", "installed_version"),
        "events": device.events.select_related("model", "version")[:HISTORY_SIZE],
        "fleet": services.fleet_settings_for(project_obj),
    })


def _rules_context(model, plan) -> dict:
    shadowed = preview.shadowing(plan)
    counts = preview.count_matches(model.project_id, plan)
    rules = list(TargetingRule.objects.filter(model=model).select_related("version"))
    for rule in rules:
        rule.shadowed_by = shadowed.get(rule.pk)
        rule.matches = counts.matches.get(rule.pk, 0)
        rule.wins = counts.wins.get(rule.pk, 0)
    return {"rules": rules, "counts": counts}


@login_required
@require_http_methods(["GET", "POST"])
def rules_page(request, project, model):
    model_obj, membership = access.model_for(request.user, project, model)
    device_types = _device_type_slugs(model_obj.project)
    form = RuleForm(model=model_obj, device_types=device_types)
    if request.method == "POST":
        access.model_for(request.user, project, model, roles.CHANGE)
        if request.POST.get("action") == "default":
            number = request.POST.get("default_version", "")
            version = model_obj.versions.filter(number=number, state="ready").first() if number.isdigit() else None
            if number and version is None:
                messages.error(request, f"Version {number} is not a ready version of {model_obj.name}.")
            else:
                services.set_default_version(model=model_obj, version=version)
                return redirect("delivery-rules", project=project, model=model)
        else:
            form = RuleForm(request.POST, model=model_obj, device_types=device_types)
            if form.is_valid():
                data = form.validated
                rule = services.create_rule(model=model_obj, version=data["version"], conditions=data["conditions"],
                                            priority=data["priority"], description=data.get("description", ""),
                                            user=request.user)
                messages.info(request, f"Rule {rule.pk} saved.")
                return redirect("delivery-rules", project=project, model=model)
    plan = load_model_plans(model_obj.project_id, [model_obj.name])[model_obj.name]
    preview_form, explanation = PreviewForm(device_types=device_types), None
    if "preview" in request.GET:
        preview_form = PreviewForm(request.GET, device_types=device_types)
        if preview_form.is_valid():
            sample = PreviewSerializer(data={key: value for key, value in preview_form.cleaned_data.items()
                                             if value not in ("", None)})
            if sample.is_valid():
                device_type = services.device_type_for(model_obj.project_id, sample.validated_data["device_type"])
                explanation = preview.explain(plan, preview.sample_facts(sample.validated_data, device_type))
            else:
                for field, errors in sample.errors.items():
                    for error in errors:
                        preview_form.add_error(field if field in preview_form.fields else None, error)
    return render(request, "devices/rules.html", {
        "project": model_obj.project, "model": model_obj, "membership": membership, "form": form,
        "can_change": access.can(membership, roles.CHANGE), "preview_form": preview_form,
        "explanation": explanation, "ready_versions": model_obj.versions.filter(state="ready"),
        "funnel": funnel_by_version(_recent_rollups(model=model_obj)), "funnel_days": FUNNEL_DAYS,
        **_rules_context(model_obj, plan),
    })


@login_required
@require_http_methods(["GET", "POST"])
def rule_page(request, project, model, rule_id):
    model_obj, membership = access.model_for(request.user, project, model)
    rule = get_object_or_404(TargetingRule.objects.select_related("version"), model=model_obj, pk=rule_id)
    device_types = _device_type_slugs(model_obj.project)
    form = RuleForm(initial=RuleForm.initial_for(rule), model=model_obj, device_types=device_types)
    if request.method == "POST":
        access.model_for(request.user, project, model, roles.CHANGE)
        if request.POST.get("action") == "delete":
            services.delete_rule(rule=rule)
            messages.info(request, f"Rule {rule_id} deleted.")
            return redirect("delivery-rules", project=project, model=model)
        form = RuleForm(request.POST, model=model_obj, device_types=device_types)
        if form.is_valid():
            services.update_rule(rule=rule, **form.validated)
            messages.info(request, f"Rule {rule.pk} saved.")
            return redirect("delivery-rules", project=project, model=model)
    return render(request, "devices/rule.html", {
        "project": model_obj.project, "model": model_obj, "membership": membership, "rule": rule, "form": form,
        "can_change": access.can(membership, roles.CHANGE),
    })
