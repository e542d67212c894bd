"""State changes of rollouts: propose, edit, submit, approve, reject, start, pause, resume, retry, roll back.

Every change locks the rollout (and, where two rollouts of one model could race, the model row first: model,
then rollout, always in that order) and checks the lifecycle in ``devices.core.rollout_plan.TRANSITIONS``.
Refusals are plain exceptions with a sentence a person can act on; the API turns ``NotAllowed`` into 403,
``WrongState`` and ``Overlap`` into 409 and any other ``Refused`` into 400.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from console.errors import Refused
from console.models import CompatibilityResult, Membership, Model, ModelVersion
from console.projects import roles
from devices.core import rollout_plan
from devices.models import Device, DeviceEvent, DeviceType, Rollout, RolloutApproval
from devices.rollouts import engine


class NotAllowed(Refused):
    """This person may not do this (four eyes, or a role that does not approve): 403."""


class WrongState(Refused):
    """The rollout is not in a state that allows the action: 409."""


class Overlap(Refused):
    """Another active rollout of the model reaches the same devices: 409."""


PLAN_FIELDS = ("version", "target", "stages", *rollout_plan.THRESHOLD_DEFAULTS)


def plan_errors(*, target: Any, stages: Any, thresholds: dict[str, Any]) -> list[str]:
    """Every problem with a plan's shape, as sentences (the serializer reports them per field)."""
    return (
        rollout_plan.target_errors(target)
        + rollout_plan.stage_errors(stages)
        + rollout_plan.threshold_errors(thresholds)
    )


def _check_plan(rollout: Rollout) -> None:
    problems = plan_errors(target=rollout.target, stages=rollout.stages, thresholds=rollout.thresholds)
    if problems:
        raise Refused(" ".join(problems))


def _require_state(rollout: Rollout, action: str) -> None:
    allowed, _ = rollout_plan.TRANSITIONS[action]
    if rollout.state not in allowed:
        wanted = " or ".join(sorted(state.replace("_", " ") for state in allowed))
        raise WrongState(
            f"Rollout {rollout.pk} is {rollout.get_state_display().lower()}; only a rollout that is {wanted} "
            f"can {action}{_hint(rollout, action)}"
        )


def _hint(rollout: Rollout, action: str) -> str:
    if action == "resume" and rollout.state == Rollout.State.COMPLETED:
        return ". It already reached every targeted device; propose a new rollout to ship another version."
    if action == "start" and rollout.state == Rollout.State.PENDING_APPROVAL:
        return ". It waits for an approver."
    return "."


def _locked(rollout: Rollout) -> Rollout:
    return Rollout.objects.select_for_update().select_related("version", "model", "project").get(pk=rollout.pk)


def _move(rollout: Rollout, action: str, **fields: Any) -> Rollout:
    _, rollout.state = rollout_plan.TRANSITIONS[action]
    for name, value in fields.items():
        setattr(rollout, name, value)
    rollout.save()
    return rollout


# -- propose and edit --------------------------------------------------------------------------------------


def propose_rollout(
    *,
    model: Model,
    version: ModelVersion,
    user,
    target: dict[str, Any] | None = None,
    stages: list[dict[str, Any]],
    **thresholds: Any,
) -> Rollout:
    """A draft rollout of ``version``; what the target runs now (the model's default version) is what a
    rollback returns to. Nothing reaches devices until it is submitted, approved and started."""
    if version.model_id != model.pk:
        raise Refused(f"version {version.number} is not a version of {model.name}.")
    unknown = set(thresholds) - set(rollout_plan.THRESHOLD_DEFAULTS)
    if unknown:
        raise Refused(f"unknown thresholds {', '.join(sorted(unknown))}.")
    rollout = Rollout(
        project_id=model.project_id,
        model=model,
        version=version,
        previous_version=model.default_version if model.default_version_id != version.pk else None,
        target=target or {},
        stages=stages,
        salt=f"rollout:{secrets.token_hex(8)}",
        proposer=user,
        last_edited_by=user,
        **{**rollout_plan.THRESHOLD_DEFAULTS, **thresholds},
    )
    _check_plan(rollout)
    with transaction.atomic():
        rollout.save()
    return rollout


def edit_rollout(*, rollout: Rollout, user, **changes: Any) -> Rollout:
    """Change the plan of a rollout that has not moved devices yet.

    A change to what an approval signs (version, target, stages, thresholds) voids the approvals: a pending or
    approved rollout goes back to pending approval (checked again, approvers notified again), a rejected one
    back to draft. The editor may then not approve it either.
    """
    unknown = set(changes) - set(PLAN_FIELDS)
    if unknown:
        raise Refused(f"cannot change {', '.join(sorted(unknown))} of a rollout.")
    with transaction.atomic():
        Model.objects.select_for_update().filter(pk=rollout.model_id).first()
        locked = _locked(rollout)
        if locked.state not in rollout_plan.EDITABLE:
            raise WrongState(
                f"Rollout {locked.pk} is {locked.get_state_display().lower()}; its plan can no longer change. "
                "Pause or roll it back, and propose a new rollout."
            )
        if "version" in changes and changes["version"].model_id != locked.model_id:
            raise Refused(f"version {changes['version'].number} is not a version of {locked.model.name}.")
        before = locked.fingerprint
        for name, value in changes.items():
            setattr(locked, name, value)
        _check_plan(locked)
        if locked.fingerprint == before:
            return locked
        locked.last_edited_by = user
        if locked.state in (Rollout.State.PENDING_APPROVAL, Rollout.State.APPROVED):
            _check_deliverable(locked)
            locked.state = Rollout.State.PENDING_APPROVAL
            locked.submitted_at = timezone.now()
            _notify_approvers(locked)
        elif locked.state == Rollout.State.REJECTED:
            locked.state = Rollout.State.DRAFT
        locked.save()
    rollout.refresh_from_db()
    return locked


# -- submit: what must hold before an approver is asked ----------------------------------------------------


def targeted_device_types(rollout: Rollout) -> list[DeviceType]:
    """The device types the target names; when it names none, those of the project's enrolled devices."""
    visible = DeviceType.objects.visible_to(rollout.project_id)
    named = rollout.target.get("device_types") or []
    if named:
        return list(visible.filter(slug__in=named))
    enrolled = Device.objects.filter(project_id=rollout.project_id, revoked_at=None).values("device_type_id")
    return list(visible.filter(pk__in=enrolled))


def _check_deliverable(rollout: Rollout) -> None:
    version = rollout.version
    if not version.is_servable:
        what = "has not been checked yet" if version.state == ModelVersion.State.CHECKING else "failed its check"
        raise Refused(
            f"version {version.number} {what} ({version.state}); only a ready (checked) version can be rolled out."
        )
    types = targeted_device_types(rollout)
    verdicts = {
        row.device_type_id: row for row in CompatibilityResult.objects.filter(version=version, device_type__in=types)
    }
    cannot = []
    for device_type in types:
        row = verdicts.get(device_type.pk)
        if row is None:
            cannot.append(f"{device_type.slug} (not checked against it)")
        elif not row.compatible:
            reason = "; ".join(str(r) for r in row.reasons[:2]) if row.reasons else "incompatible"
            cannot.append(f"{device_type.slug} ({reason})")
    if cannot:
        can = sorted(t.slug for t in types if t.pk in verdicts and verdicts[t.pk].compatible)
        restrict = (
            f" Restrict the target's device_types to those it can run on: {', '.join(can)}."
            if can
            else " It runs on none of the targeted device types."
        )
        raise Refused(f"version {version.number} cannot run on {', '.join(sorted(cannot))}.{restrict}")


def _check_no_overlap(rollout: Rollout) -> None:
    others = (
        Rollout.objects.filter(model_id=rollout.model_id, state__in=rollout_plan.ACTIVE)
        .exclude(pk=rollout.pk)
        .select_related("version")
        .order_by("pk")
    )
    for other in others:
        if rollout_plan.targets_overlap(rollout.target, other.target):
            raise Overlap(
                f"rollout {other.pk} of {rollout.model.name} (version {other.version.number}, "
                f"{other.get_state_display().lower()}) already targets devices this target reaches. Narrow one "
                f"target (device types, regions, app version) or finish or roll back rollout {other.pk} first."
            )


def submit_rollout(*, rollout: Rollout, user) -> Rollout:
    """Draft -> pending approval, when the version is ready and runs on every targeted device type and no
    other active rollout of the model reaches the same devices; approvers are told by email."""
    with transaction.atomic():
        Model.objects.select_for_update().filter(pk=rollout.model_id).first()
        locked = _locked(rollout)
        _require_state(locked, "submit")
        _check_plan(locked)
        _check_deliverable(locked)
        _check_no_overlap(locked)
        _move(locked, "submit", submitted_at=timezone.now())
        _notify_approvers(locked)
    return locked


# -- four eyes ---------------------------------------------------------------------------------------------


def approval_refusal(rollout: Rollout, user) -> str | None:
    """Why ``user`` may not approve or reject ``rollout`` (None: they may) — the one place of this rule.

    An approver is a member whose role allows approving (approver, or owner: an owner holds every right of
    the project) or a superuser acting in the admin; never the proposer, nor whoever changed the plan last.
    """
    if user is None or not user.is_authenticated:
        return "Sign in to approve."
    if user.pk in (rollout.proposer_id, rollout.last_edited_by_id):
        who = "proposed" if user.pk == rollout.proposer_id else "last changed"
        return (
            f"You {who} rollout {rollout.pk}; another member with the approver role must approve or reject it "
            "(four eyes)."
        )
    role = Membership.objects.filter(project_id=rollout.project_id, user=user).values_list("role", flat=True).first()
    if not roles.role_allows(role, roles.APPROVE) and not user.is_superuser:
        return f"Your role in this project is {role or 'none'}; only an approver or owner may approve or reject."
    return None


def _decide(rollout: Rollout, user, decision: str, comment: str, fingerprint: str | None) -> Rollout:
    with transaction.atomic():
        locked = _locked(rollout)
        refusal = approval_refusal(locked, user)
        if refusal:
            raise NotAllowed(refusal)
        _require_state(locked, decision)
        if fingerprint is not None and fingerprint != locked.fingerprint:
            raise WrongState(
                f"Rollout {locked.pk}'s plan changed after you opened it (version, target, stages or thresholds); "
                "review it again before deciding."
            )
        RolloutApproval.objects.create(
            rollout=locked, approver=user, decision=decision, comment=comment, fingerprint=locked.fingerprint
        )
        _move(locked, decision)
    return locked


def approve_rollout(*, rollout: Rollout, user, comment: str = "", fingerprint: str | None = None) -> Rollout:
    """Pending -> approved. ``fingerprint``: the plan the approver saw; a plan changed since is refused."""
    return _decide(rollout, user, RolloutApproval.Decision.APPROVE, comment.strip(), fingerprint)


def reject_rollout(*, rollout: Rollout, user, comment: str, fingerprint: str | None = None) -> Rollout:
    """Pending -> rejected, with the reason for the proposer."""
    if not comment.strip():
        raise Refused("Say why in a comment when rejecting, so the proposer knows what to change.")
    return _decide(rollout, user, RolloutApproval.Decision.REJECT, comment.strip(), fingerprint)


def current_approval(rollout: Rollout) -> RolloutApproval | None:
    """The approval of the plan as it stands now, if any."""
    latest = rollout.approvals.order_by("-created_at", "-id").first()
    if (
        latest is None
        or latest.decision != RolloutApproval.Decision.APPROVE
        or latest.fingerprint != rollout.fingerprint
    ):
        return None
    return latest


# -- running -----------------------------------------------------------------------------------------------


def start_rollout(*, rollout: Rollout, user) -> Rollout:
    """Approved -> running at stage 0, when the approval still matches the plan and nothing overlaps."""
    with transaction.atomic():
        Model.objects.select_for_update().filter(pk=rollout.model_id).first()
        locked = _locked(rollout)
        _require_state(locked, "start")
        if current_approval(locked) is None:
            raise WrongState(
                f"Rollout {locked.pk}'s approval is void: its plan changed after it was approved. "
                "Submit it for approval again."
            )
        _check_deliverable(locked)
        _check_no_overlap(locked)
        now = timezone.now()
        locked.started_at = now
        locked.stage_history = []
        engine.open_stage(locked, 0, now)
        _move(locked, "start", halt_reason="")
    return locked


def pause_rollout(*, rollout: Rollout, user) -> Rollout:
    """Running -> paused: devices not yet on the version stop being offered it; the stage clock stops."""
    with transaction.atomic():
        locked = _locked(rollout)
        _require_state(locked, "pause")
        engine.close_stage(locked, timezone.now(), "paused")
        return _move(locked, "pause")


def resume_rollout(*, rollout: Rollout, user) -> Rollout:
    """Paused or halted -> running, in the same stage, opened again: its dwell starts again and it is judged
    on what devices report from now on (the figures that halted it do not halt it again)."""
    with transaction.atomic():
        locked = _locked(rollout)
        _require_state(locked, "resume")
        engine.open_stage(locked, locked.current_stage, timezone.now())
        return _move(locked, "resume", halt_reason="")


# A retry names the devices that may try again; beyond this many, the oldest failures are retried first.
MAX_RETRY_DEVICES = 10_000


def retry_failed_devices(*, rollout: Rollout, user) -> Rollout:
    """Let the devices that reported a failed download or install of the rollout's version try again, while
    it is paused or halted (it offers the version to no new device then). The devices are listed on the
    rollout (at most ``MAX_RETRY_DEVICES``) and ``retry_generation`` goes up: their next check-in offers them
    the version again with that generation, and the agent drops its back-off for it (PROTOCOL.md, ``retry``)."""
    with transaction.atomic():
        locked = _locked(rollout)
        if locked.state not in rollout_plan.RETRYABLE:
            raise WrongState(
                f"Rollout {locked.pk} is {locked.get_state_display().lower()}; retrying failed devices is for a "
                "paused or halted rollout (a running one offers the version to its stage's devices anyway)."
            )
        failed = (
            DeviceEvent.objects.filter(
                project_id=locked.project_id,
                version_id=locked.version_id,
                type__in=[DeviceEvent.Type.DOWNLOAD_FAILED, DeviceEvent.Type.INSTALL_FAILED],
                at__gte=locked.started_at,
            )
            .order_by("device__device_id")
            .values_list("device__device_id", flat=True)
            .distinct()[:MAX_RETRY_DEVICES]
        )
        devices = list(failed)
        if not devices:
            raise Refused(
                f"No device reported a failed download or install of version {locked.version.number} since rollout "
                f"{locked.pk} started: there is nothing to retry."
            )
        locked.retry_devices = devices
        locked.retry_generation += 1
        locked.save()
    return locked


def rollback_rollout(*, rollout: Rollout, user) -> Rollout:
    """-> rolled back: the targeted devices on the rollout's version return to the version they ran before,
    through check-in (devices.core.resolution.decide_by_rollouts); a completed rollout's rule is removed."""
    with transaction.atomic():
        locked = _locked(rollout)
        if locked.previous_version_id is None and locked.state in rollout_plan.TRANSITIONS["rollback"][0]:
            raise Refused(
                f"Rollout {locked.pk} has no previous version to return to: {locked.model.name} had no default "
                "version when it was proposed. Pause it instead, or roll out the version devices should run."
            )
        _require_state(locked, "rollback")
        now = timezone.now()
        engine.close_stage(locked, now, "rolled_back")
        if locked.promoted_rule is not None:
            locked.promoted_rule.delete()
            locked.promoted_rule = None
        return _move(locked, "rollback", ended_at=now)


# -- notifications -----------------------------------------------------------------------------------------


def approvers_of(rollout: Rollout) -> Iterable[str]:
    """Email addresses of the members who may approve ``rollout`` (never its proposer or last editor)."""
    approving = [role for role, _ in roles.ROLE_CHOICES if roles.role_allows(role, roles.APPROVE)]
    members = (
        Membership.objects.filter(project_id=rollout.project_id, role__in=approving)
        .exclude(user_id__in=[pk for pk in (rollout.proposer_id, rollout.last_edited_by_id) if pk])
        .exclude(Q(user__email="") | Q(user__email__isnull=True))
        .order_by("user__email")
    )
    return list(members.values_list("user__email", flat=True))


def approval_url(rollout: Rollout) -> str:
    """The approval page's absolute address; SITE_URL says where people reach the console (mail has no request)."""
    path = reverse("rollout-approval", args=[rollout.project.slug, rollout.model.name, rollout.pk])
    return settings.SITE_URL.rstrip("/") + path


def _notify_approvers(rollout: Rollout) -> None:
    recipients = list(approvers_of(rollout))
    if not recipients:
        return
    proposer = rollout.last_edited_by or rollout.proposer
    stages = " -> ".join(f"{s['percent']:g}%" for s in rollout.stages)
    subject = f"[{rollout.project.slug}] Approve rollout {rollout.pk}: {rollout.model.name} v{rollout.version.number}"
    body = (
        f"{proposer or 'Someone'} asks for approval of rollout {rollout.pk} of {rollout.model.name} "
        f"version {rollout.version.number} in stages {stages}.\n"
        "Review its compatibility, benchmarks and plan, then approve or reject it:\n"
        f"{approval_url(rollout)}"
    )
    sender = getattr(settings, "DEFAULT_FROM_EMAIL", None)
    # After commit: a refused or rolled-back submit sends nothing.
    transaction.on_commit(lambda: send_mail(subject, body, sender, recipients, fail_silently=True))
