"""Helpers for the rollout engine's tests: a rollout taken through four eyes to running, devices' reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.utils import timezone

from devices.models import Device, Rollout
from devices.rollouts import services
from devices.telemetry.events import record_events

STAGES = [
    {"percent": 10, "dwell_minutes": 60},
    {"percent": 50, "dwell_minutes": 60},
    {"percent": 100, "dwell_minutes": 60},
]


def running_rollout(model, version, *, proposer, approver, stages=STAGES, target=None, **thresholds: Any) -> Rollout:
    """A rollout of ``version`` proposed by ``proposer``, approved by ``approver`` and started."""
    rollout = services.propose_rollout(
        model=model, version=version, user=proposer, target=target or {}, stages=stages, **thresholds
    )
    rollout = services.submit_rollout(rollout=rollout, user=proposer)
    rollout = services.approve_rollout(rollout=rollout, user=approver, comment="ok")
    return services.start_rollout(rollout=rollout, user=proposer)


def report(device: Device, version, *, at: datetime | None = None, **counts: int) -> None:
    """``device`` reports ``counts`` events of each type about ``version`` (e.g. download_failed=3), as the
    agent's event batches do."""
    at = at or timezone.now()
    events = [
        {
            "id": uuid.uuid4().hex,
            "type": kind,
            "model": version.model.name,
            "version_id": version.pk,
            "at": at,
            "reason": "injected" if kind.endswith("failed") else "",
            "stats": {},
        }
        for kind, count in counts.items()
        for _ in range(count)
    ]
    record_events(device=device, events=events, now=at)


def report_latency(device: Device, version, *, p50_ms: float, inferences: int = 10) -> None:
    """``device`` reports inference stats of ``version``: ``inferences`` runs at a p50 of ``p50_ms``."""
    now = timezone.now()
    record_events(
        device=device,
        events=[
            {
                "id": uuid.uuid4().hex,
                "type": "inference_stats",
                "model": version.model.name,
                "version_id": version.pk,
                "at": now,
                "reason": "",
                "stats": {"count": inferences, "latency_ms_p50": p50_ms, "latency_ms_p90": p50_ms * 1.5},
            }
        ],
        now=now,
    )
