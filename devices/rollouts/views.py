"""Rollout pages: a model's rollouts, the propose form, one rollout's progress and actions, and the approval page.

Every change goes through ``devices.rollouts.services``; their refusals show as form errors or messages.
"""

from __future__ import annotations

import csv
import io
import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from console.audit.queries import entries_of, row
from console.errors import Refused
from console.projects import roles
from console.projects.permissions import MODEL, scoped_page
from devices.catalog.queries import device_type_slugs
from devices.core import rollout_plan
from devices.models import Rollout
from devices.rollouts import progress, review, services
from devices.rollouts.forms import DecisionForm, ProposeForm
from devices.rules import impact

PAGE_SIZE = 25
AUDIT_ROWS = 50  # the rollout page's trail; the audit page has the rest
# What the rollout page's buttons do: action -> (service, label). Retry is offered once a service exists.
ACTIONS = {
    "submit": (services.submit_rollout, "Submit for approval"),
    "start": (services.start_rollout, "Start"),
    "pause": (services.pause_rollout, "Pause"),
    "resume": (services.resume_rollout, "Resume"),
    "retry": (services.retry_failed_devices, "Retry failed devices"),
    "rollback": (services.rollback_rollout, "Roll back"),
}
# The states each action is offered in: the lifecycle's moves, and retry, which moves no state.
OFFERED_IN = {action: rollout_plan.TRANSITIONS[action][0] for action in ACTIONS if action != "retry"} | {
    "retry": rollout_plan.RETRYABLE
}


def _rollout(model, rollout_id: int) -> Rollout:
    return get_object_or_404(
        Rollout.objects.select_related("version", "previous_version", "proposer", "last_edited_by"),
        model=model,
        pk=rollout_id,
    )


def _target_words(target: dict) -> str:
    parts = []
    if target.get("device_types"):
        parts.append("type in " + ", ".join(target["device_types"]))
    if target.get("regions"):
        parts.append("region in " + ", ".join(target["regions"]))
    if target.get("app_version"):
        parts.append("app " + target["app_version"])
    parts += [f"{a['key']} {a['op']} {json.dumps(a['value'])}" for a in target.get("attributes") or []]
    return "; ".join(parts) or "every enrolled device"


@scoped_page(MODEL)
@require_safe
def rollouts_page(request, access, project, model):
    model_obj = access.model
    rollouts = Rollout.objects.filter(model=model_obj).select_related("version", "previous_version", "proposer")
    page = Paginator(rollouts, PAGE_SIZE).get_page(request.GET.get("page"))
    for rollout in page:
        rollout.target_words = _target_words(rollout.target)
    return render(
        request,
        "devices/rollouts.html",
        {
            "project": model_obj.project,
            "model": model_obj,
            "membership": access.membership,
            "page": page,
            "can_change": access.may(roles.CHANGE),
        },
    )


@require_http_methods(["GET", "POST"])
@scoped_page(MODEL)
def propose_page(request, access, project, model):
    model_obj = access.model
    device_types = device_type_slugs(model_obj.project)
    form = ProposeForm(request.POST or None, model=model_obj, device_types=device_types)
    if request.method == "POST" and form.is_valid():
        data = form.validated
        form.blocked = impact.for_target(model_obj, data["version"], data.get("target"))
        if form.blocked and not form.cleaned_data["confirm"]:
            form.add_error(None, impact.confirm_message(data["version"].number, form.blocked))
        else:
            try:
                rollout = services.propose_rollout(model=model_obj, user=request.user, **data)
            except Refused as exc:
                form.add_error(None, str(exc))
            else:
                messages.info(request, f"Rollout {rollout.pk} proposed as a draft: submit it for approval.")
                return redirect("rollout", project=project, model=model, rollout_id=rollout.pk)
    return render(
        request,
        "devices/rollout_propose.html",
        {"project": model_obj.project, "model": model_obj, "membership": access.membership, "form": form},
        status=400 if request.method == "POST" else 200,
    )


def _available_actions(rollout: Rollout) -> list[tuple[str, str]]:
    buttons = []
    for action, (_, label) in ACTIONS.items():
        if rollout.state not in OFFERED_IN[action]:
            continue
        if action == "rollback" and rollout.previous_version_id is None:
            continue  # nothing to return to: the service refuses, so no button
        buttons.append((action, label))
    return buttons


@require_http_methods(["GET", "POST"])
@scoped_page(MODEL)
def rollout_page(request, access, project, model, rollout_id):
    model_obj = access.model
    rollout = _rollout(model_obj, rollout_id)
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action not in ACTIONS:
            messages.error(request, f"Unknown action {action!r}: use one of {', '.join(ACTIONS)}.")
        else:
            change, _ = ACTIONS[action]
            try:
                changed = change(rollout=rollout, user=request.user)
            except Refused as exc:
                messages.error(request, str(exc))
            else:
                if action == "retry":
                    retried = len(changed.retry_devices or [])
                    messages.info(request, f"Rollout {rollout.pk}: {retried} device(s) that failed may try again.")
                else:
                    messages.info(request, f"Rollout {rollout.pk} is now {changed.get_state_display().lower()}.")
        return redirect("rollout", project=project, model=model, rollout_id=rollout.pk)
    figures = progress.progress(rollout)
    timeline = progress.timeline(rollout, timezone.now())
    audit = [
        row(entry) for entry in entries_of(model_obj.project, {"kind": "rollout", "object_id": rollout.pk})[:AUDIT_ROWS]
    ]
    return render(
        request,
        "devices/rollout.html",
        {
            "project": model_obj.project,
            "model": model_obj,
            "membership": access.membership,
            "rollout": rollout,
            "target_words": _target_words(rollout.target),
            "progress": figures,
            "health": progress.health(rollout),
            "funnel": progress.funnel(rollout),
            "timeline": timeline,
            "chart": {
                "rows": timeline,
                "now": timezone.now().isoformat(),
                "running": rollout.state == Rollout.State.RUNNING,
            },
            "timeline_columns": progress.TIMELINE_COLUMNS,
            "approvals": rollout.approvals.select_related("approver"),
            "audit": audit,
            "can_change": access.may(roles.CHANGE),
            "actions": _available_actions(rollout),
        },
    )


@scoped_page(MODEL)
@require_safe
def rollout_timeline_csv(request, access, project, model, rollout_id):
    rollout = _rollout(access.model, rollout_id)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=progress.TIMELINE_COLUMNS)
    writer.writeheader()
    writer.writerows(progress.timeline(rollout, timezone.now()))
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="rollout-{rollout.pk}-stages.csv"'
    return response


@require_http_methods(["GET", "POST"])
@scoped_page(MODEL, required_role={"POST": roles.APPROVE})
def approval_page(request, access, project, model, rollout_id):
    model_obj = access.model
    rollout = _rollout(model_obj, rollout_id)
    form = DecisionForm(request.POST or None, initial={"fingerprint": rollout.fingerprint})
    status, decision_error = 200, ""
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            decide = services.approve_rollout if data["decision"] == "approve" else services.reject_rollout
            try:
                decide(rollout=rollout, user=request.user, comment=data["comment"], fingerprint=data["fingerprint"])
            except Refused as exc:
                # A fresh form: it carries the plan as it stands now, for a second look.
                decision_error = str(exc)
                form = DecisionForm(initial={"fingerprint": rollout.fingerprint, "comment": data["comment"]})
            else:
                messages.info(
                    request, f"Rollout {rollout.pk} {'approved' if data['decision'] == 'approve' else 'rejected'}."
                )
                return redirect("rollout", project=project, model=model, rollout_id=rollout.pk)
        status = 400
    refusal = services.approval_refusal(rollout, request.user)
    if refusal is None and rollout.state != Rollout.State.PENDING_APPROVAL:
        refusal = f"Rollout {rollout.pk} is {rollout.get_state_display().lower()}: only a rollout pending approval is decided."
    reach, sampled = review.stage_reach(rollout)
    version = rollout.version
    return render(
        request,
        "devices/rollout_approval.html",
        {
            "project": model_obj.project,
            "model": model_obj,
            "membership": access.membership,
            "rollout": rollout,
            "target_words": _target_words(rollout.target),
            "compatibility": version.compatibility.select_related("device_type").order_by("device_type__slug"),
            "targeted_types": {t.slug for t in services.targeted_device_types(rollout)},
            "benchmarks": review.benchmarks(version, rollout.previous_version),
            "reach": reach,
            "reach_sampled": sampled,
            "blocked": impact.for_target(model_obj, version, rollout.target),
            "form": form,
            "decision_error": decision_error,
            "refusal": refusal,
            "rate_caps": [rollout_plan.rate_cap(i, rollout.thresholds) for i in range(len(rollout.stages))],
        },
        status=status,
    )
