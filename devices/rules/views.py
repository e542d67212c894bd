"""Targeting pages: a model's rules with their preview, and one rule's editor."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from console.projects import roles
from console.projects.permissions import MODEL, scoped_page
from devices.catalog.queries import device_type_slugs
from devices.delivery.cache import load_model_plans
from devices.fleet import services as fleet_services
from devices.models import TargetingRule
from devices.rules import impact, preview
from devices.rules import services as rules_services
from devices.rules.forms import PreviewForm, RuleForm
from devices.rules.serializers import DefaultVersionSerializer, PreviewSerializer
from devices.telemetry.rollups import FUNNEL_DAYS, funnel_by_version, recent_rollups


def _warn(request, blocked: list[impact.Blocked]) -> None:
    """After a confirmed save, say once more which devices the change does not reach."""
    for sentence in impact.sentences(blocked):
        messages.warning(request, f"Saved although {sentence}")


def _rules_context(model) -> dict:
    rules: list[Any] = list(TargetingRule.objects.filter(model=model).select_related("version"))  # annotated below
    plan = preview.rules_plan(model, [preview.rule_of(rule) for rule in rules])
    shadowed = preview.shadowing(plan.rules)
    counts = preview.count_matches(model.project_id, plan)
    for rule in rules:
        rule.shadowed_by = shadowed.get(rule.pk)
        rule.matches = counts.matches.get(rule.pk, 0)
        rule.wins = counts.wins.get(rule.pk, 0)
    return {"rules": rules, "counts": counts}


@require_http_methods(["GET", "POST"])
@scoped_page(MODEL)
def rules_page(request, access, project, model):
    model_obj = access.model
    device_types = device_type_slugs(model_obj.project)
    form = RuleForm(model=model_obj, device_types=device_types)
    default_blocked: list = []
    default_choice = None
    if request.method == "POST":
        if request.POST.get("action") == "default":
            number = request.POST.get("default_version", "")
            choice = DefaultVersionSerializer(
                data={
                    "version": int(number) if number.isdigit() else None,
                    "confirm": bool(request.POST.get("confirm")),
                },
                context={"model": model_obj},
            )
            if number and not number.isdigit():
                messages.error(request, f"Version {number} is not a ready version of {model_obj.name}.")
            elif not choice.is_valid():
                default_blocked = getattr(choice, "blocked", [])
                default_choice = number
                for field, errors in choice.errors.items():
                    if field != "warnings":
                        messages.error(request, " ".join(str(e) for e in errors))
            else:
                try:
                    rules_services.set_default_version(model=model_obj, version=choice.validated_data["version"])
                except rules_services.ApprovalRequired as exc:
                    messages.error(request, str(exc))
                else:
                    _warn(request, getattr(choice, "blocked", []))
                    return redirect("delivery-rules", project=project, model=model)
        else:
            form = RuleForm(request.POST, model=model_obj, device_types=device_types)
            if form.is_valid():
                data = form.validated
                try:
                    rule = rules_services.create_rule(
                        model=model_obj,
                        version=data["version"],
                        conditions=data["conditions"],
                        priority=data["priority"],
                        description=data.get("description", ""),
                        user=request.user,
                    )
                except rules_services.ApprovalRequired as exc:
                    form.add_error(None, str(exc))
                else:
                    messages.info(request, f"Rule {rule.pk} saved.")
                    _warn(request, form.blocked)
                    return redirect("delivery-rules", project=project, model=model)
    preview_form, explanation = PreviewForm(device_types=device_types), None
    if "preview" in request.GET:
        preview_form = PreviewForm(request.GET, device_types=device_types)
        if preview_form.is_valid():
            sample = PreviewSerializer(
                data={key: value for key, value in preview_form.cleaned_data.items() if value not in ("", None)}
            )
            if sample.is_valid():
                device_type = fleet_services.device_type_for(model_obj.project_id, sample.validated_data["device_type"])
                plan = load_model_plans(model_obj.project_id, [model_obj.name])[model_obj.name]
                explanation = preview.explain(plan, preview.sample_facts(sample.validated_data, device_type))
            else:
                for field, errors in sample.errors.items():
                    for error in errors:
                        preview_form.add_error(field if field in preview_form.fields else None, error)
    return render(
        request,
        "devices/rules.html",
        {
            "project": model_obj.project,
            "model": model_obj,
            "membership": access.membership,
            "form": form,
            "can_change": access.may(roles.CHANGE),
            "require_approval": model_obj.project.require_approval,
            "default_blocked": default_blocked,
            "default_choice": default_choice,
            "preview_form": preview_form,
            "explanation": explanation,
            "ready_versions": model_obj.versions.servable(),
            "funnel": funnel_by_version(recent_rollups(model=model_obj)),
            "funnel_days": FUNNEL_DAYS,
            "counts_cache_s": preview.COUNTS_CACHE_S,
            **_rules_context(model_obj),
        },
    )


@require_http_methods(["GET", "POST"])
@scoped_page(MODEL)
def rule_page(request, access, project, model, rule_id):
    model_obj = access.model
    rule = get_object_or_404(TargetingRule.objects.select_related("version"), model=model_obj, pk=rule_id)
    device_types = device_type_slugs(model_obj.project)
    form = RuleForm(initial=RuleForm.initial_for(rule), model=model_obj, device_types=device_types, rule=rule)
    if request.method == "POST":
        try:
            if request.POST.get("action") == "delete":
                rules_services.delete_rule(rule=rule)
                messages.info(request, f"Rule {rule_id} deleted.")
                return redirect("delivery-rules", project=project, model=model)
            form = RuleForm(request.POST, model=model_obj, device_types=device_types, rule=rule)
            if form.is_valid():
                rules_services.update_rule(rule=rule, **form.validated)
                messages.info(request, f"Rule {rule.pk} saved.")
                _warn(request, form.blocked)
                return redirect("delivery-rules", project=project, model=model)
        except rules_services.ApprovalRequired as exc:
            form.add_error(None, str(exc))
    return render(
        request,
        "devices/rule.html",
        {
            "project": model_obj.project,
            "model": model_obj,
            "membership": access.membership,
            "rule": rule,
            "form": form,
            "can_change": access.may(roles.CHANGE),
            "require_approval": model_obj.project.require_approval,
        },
    )
