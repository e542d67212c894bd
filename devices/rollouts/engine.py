"""The running rollouts' engine: what the beat task does to each one, and how a stage opens.

``step_rollouts(now)`` visits every running rollout. Each is locked on its own (``SELECT ... FOR UPDATE SKIP
LOCKED`` of the row still ``running``): a second beat run at the same moment skips a rollout the first holds,
and once the first commits it sees the stage just opened (its dwell starts now), so a stage is never skipped
nor doubled. The decision is pure (``rollout_plan.next_step``): halt on a crossed threshold, open more of the
stage under the rate cap, advance after the dwell, complete after the last stage.

Whatever the fleet's size, a step reads one aggregate of rollup rows (devices.rollouts.health) and writes the
rollout row, the project's plan generation (``devices.delivery.cache.invalidate``, by the Rollout queryset's
signals: devices re-resolve once) and an audit entry; no device row. Only a rate-capped stage counts the
devices its target reaches, once, when it opens (to turn devices per minute into a share); while it opens,
each beat that lets more devices in starts a new plan generation too (the price of a cap: the fleet
re-resolves once a beat until the stage is fully open). A beat that only waits writes the figures alone.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from devices.core import rollout_plan
from devices.core.targeting.rules import Rule
from devices.models import Rollout, TargetingRule
from devices.rollouts import health
from devices.rules import preview

logger = logging.getLogger(__name__)


def step_rollouts(now: datetime | None = None) -> dict[str, int]:
    """One beat: step every running rollout; returns how many took each action (``rollout_plan.Step``)."""
    now = now or timezone.now()
    done: dict[str, int] = {}
    running = Rollout.objects.filter(state=Rollout.State.RUNNING).order_by("pk").values_list("pk", flat=True)
    for rollout_id in list(running):
        try:
            action = step_rollout(rollout_id, now)
        except Exception:  # one broken rollout must not stop the others; the next beat tries it again
            logger.exception("rollout %s: step failed", rollout_id)
            action = "error"
        if action is not None:
            done[action] = done.get(action, 0) + 1
    return done


def step_rollout(rollout_id: int, now: datetime) -> str | None:
    """Judge one running rollout and act; None when it is not running or another beat run holds it."""
    with transaction.atomic():
        rollout = (
            Rollout.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("model", "version")
            .filter(pk=rollout_id, state=Rollout.State.RUNNING)
            .first()
        )
        if rollout is None:
            return None
        if not rollout.stage_history:  # started before the engine kept a history
            open_stage(rollout, rollout.current_stage, rollout.stage_started_at or now)
        entry = rollout.stage_history[-1]
        figures = health.cumulative_figures(rollout, now).since(rollout_plan.Figures.of(entry.get("baseline")))
        started = rollout.stage_started_at or now
        step = rollout_plan.next_step(
            stages=rollout.stages,
            stage_index=rollout.current_stage,
            offered=rollout.offered_percent,
            minutes_in_stage=(now - started).total_seconds() / 60,
            figures=figures,
            thresholds=rollout.thresholds,
            eligible_devices=entry.get("eligible_devices"),
        )
        entry.update(
            figures=figures.as_dict(),
            health=[measure.as_dict() for measure in rollout_plan.health(figures, rollout.thresholds)],
            checked_at=now.isoformat(),
        )
        if step.action == rollout_plan.WAIT:
            # The figures only: no field check-in reads, so no new plan generation and no audit entry.
            Rollout.objects.filter(pk=rollout.pk).update(stage_history=rollout.stage_history, updated_at=now)
            return step.action
        if step.action == rollout_plan.HALT:
            percent = rollout.stages[rollout.current_stage]["percent"]
            close_stage(rollout, now, "halted", step.reason)
            rollout.state = Rollout.State.HALTED
            rollout.halt_reason = (
                f"Halted by itself in stage {rollout.current_stage + 1} ({percent:g}%): {step.reason}."
            )
        elif step.action == rollout_plan.OFFER:
            assert step.percent is not None
            rollout.offered_percent = step.percent
        elif step.action == rollout_plan.ADVANCE:
            close_stage(rollout, now, "advanced")
            open_stage(rollout, rollout.current_stage + 1, now)
        elif step.action == rollout_plan.COMPLETE:
            close_stage(rollout, now, "completed")
            rollout.state = Rollout.State.COMPLETED
            rollout.ended_at = now
            rollout.promoted_rule = _promote(rollout)
        rollout.save()
        return step.action


def open_stage(rollout: Rollout, stage_index: int, now: datetime) -> None:
    """Open stage ``stage_index`` of ``rollout`` at ``now`` (the caller saves): its dwell starts, the figures
    reported so far become its baseline, and it offers its percent (or, under a rate cap, the first minute's
    share). Used by the beat's advance, and by start and resume."""
    eligible = eligible_devices(rollout) if rollout.max_devices_per_minute else None
    rollout.current_stage = stage_index
    rollout.stage_started_at = now
    rollout.offered_percent = rollout_plan.offered_percent(
        rollout.stages, stage_index, rollout.thresholds, minutes_elapsed=0, eligible_devices=eligible
    )
    entry: dict[str, Any] = {
        "stage": stage_index,
        "percent": float(rollout.stages[stage_index]["percent"]),
        "started_at": now.isoformat(),
        "eligible_devices": eligible,
        "baseline": health.cumulative_figures(rollout, now).as_dict(),
        "figures": None,
        "health": [],
        "checked_at": None,
        "ended_at": None,
        "outcome": None,
        "reason": "",
    }
    rollout.stage_history = [*rollout.stage_history, entry]


def close_stage(rollout: Rollout, now: datetime, outcome: str, reason: str = "") -> None:
    """Close the open stage entry of the history (the caller saves); nothing when none is open."""
    if rollout.stage_history and rollout.stage_history[-1].get("ended_at") is None:
        rollout.stage_history[-1].update(ended_at=now.isoformat(), outcome=outcome, reason=reason)


def eligible_devices(rollout: Rollout) -> int:
    """Enrolled devices the target reaches now, counted by distinct configuration (rules.preview, bounded)."""
    target = Rule.from_dict({"id": "target", "version": rollout.version_id, "conditions": rollout.target})
    counts = preview.count_matches(rollout.project_id, preview.rules_plan(rollout.model, [target]))
    return counts.matches.get("target", 0)


def _promote(rollout: Rollout) -> TargetingRule:
    """A completed rollout hands its devices to a targeting rule tried before the others (its target, its
    version): the rollout stops deciding, and the rules page shows what the fleet now runs and why."""
    first = TargetingRule.objects.filter(model_id=rollout.model_id).aggregate(first=Min("priority"))["first"]
    return TargetingRule.objects.create(
        model_id=rollout.model_id,
        version_id=rollout.version_id,
        conditions=dict(rollout.target),
        priority=min(100, first - 1) if first is not None else 100,
        description=f"rollout {rollout.pk} completed"[:200],
    )
