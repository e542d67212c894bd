"""``{% load workers %}`` ... ``{% job_waiting_note job %}``: 'waiting for a worker' beside a queued job that no
live worker would pick up, nothing otherwise (console.context_processors.worker_status supplies the facts)."""

from __future__ import annotations

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def job_waiting_note(context, job) -> str:
    status = context.get("worker_status")
    return status.waiting_note(job) if status is not None else ""
