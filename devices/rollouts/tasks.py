"""The beat task that moves running rollouts (devices.rollouts.engine); every ``ROLLOUT_BEAT_INTERVAL_S``."""

from __future__ import annotations

from celery import shared_task

from devices.rollouts import engine


@shared_task(acks_late=True)
def step_rollouts() -> dict[str, int]:
    """Advance, open up, halt or complete each running rollout. Safe to run twice at once: each rollout is
    locked on its own and a run that finds it held skips it."""
    return engine.step_rollouts()
