"""Periodic work of experiments (Celery beat): guardrails."""

from __future__ import annotations

from celery import shared_task

from devices.experiments.guardrails import enforce_guardrails
from devices.models import Experiment


@shared_task(acks_late=True)  # idempotent: an arm already stopped stays stopped
def enforce_all_guardrails() -> dict[str, list[str]]:
    """Check every running experiment's guardrails; stop the arms that tripped one."""
    stopped = {}
    for experiment in Experiment.objects.running().order_by("pk"):
        names = enforce_guardrails(experiment)
        if names:
            stopped[str(experiment.pk)] = names
    return stopped
