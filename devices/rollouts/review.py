"""What an approver judges on one screen, besides the compatibility matrix: how many enrolled devices each stage
would reach now, and the version's benchmarks against the version it replaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from console.models import ModelVersion
from devices.models import Rollout
from devices.rollouts.progress import MAX_DEVICES, targeted_devices


@dataclass(frozen=True)
class StageReach:
    number: int
    percent: float
    dwell_minutes: int
    devices: int  # enrolled targeted devices in this stage or an earlier one, now


def stage_reach(rollout: Rollout) -> tuple[list[StageReach], bool]:
    """Per stage, how many enrolled devices it would reach now, counted exactly with the rollout's own bucketing
    over the targeted devices; and whether the count stopped at ``MAX_DEVICES`` walked."""
    joining = [0] * len(rollout.stages)
    walked = 0
    for _, stage_index in targeted_devices(rollout):
        joining[stage_index] += 1
        walked += 1
    reach, total = [], 0
    for index, stage in enumerate(rollout.stages):
        total += joining[index]
        reach.append(StageReach(index + 1, stage["percent"], stage["dwell_minutes"], total))
    return reach, walked >= MAX_DEVICES


def _bench(version: ModelVersion | None, relative_to: ModelVersion) -> dict[str, Any]:
    """A version's own benchmark; for the parent of ``relative_to``, the parent figures measured in the same job."""
    if version is None:
        return {}
    if version.pk == relative_to.parent_id and relative_to.metrics.get("parent_benchmark"):
        return relative_to.metrics["parent_benchmark"]
    return version.metrics.get("benchmark") or {}


def _latency(bench: dict[str, Any]) -> float | None:
    return (bench.get("latency_1_thread") or {}).get("median_ms")


def _accuracy(bench: dict[str, Any]) -> float | None:
    return (bench.get("evaluation") or {}).get("accuracy")


def _ratio(new: float | None, old: float | None) -> str:
    return f"× {new / old:.3f}" if new is not None and old else "—"


def benchmarks(version: ModelVersion, previous: ModelVersion | None) -> list[dict[str, Any]]:
    """Rows of (figure, this version, the version it replaces, change). Agreement is measured only between a
    variant and its parent; otherwise the row says so."""
    new, old = _bench(version, version), _bench(previous, version)
    new_ms, old_ms = _latency(new), _latency(old)
    new_acc, old_acc = _accuracy(new), _accuracy(old)
    rows = [
        {
            "figure": "file size",
            "new": f"{version.size_bytes:,} B",
            "old": f"{previous.size_bytes:,} B" if previous else "—",
            "change": _ratio(version.size_bytes, previous.size_bytes if previous else None),
        },
        {
            "figure": "latency on this server (median, 1 thread)",
            "new": f"{new_ms:.3f} ms" if new_ms is not None else "not measured",
            "old": f"{old_ms:.3f} ms" if old_ms is not None else "not measured",
            "change": _ratio(new_ms, old_ms),
        },
        {
            "figure": "accuracy",
            "new": f"{new_acc:.4f}" if new_acc is not None else "not measured",
            "old": f"{old_acc:.4f}" if old_acc is not None else "not measured",
            "change": f"{100 * (new_acc - old_acc):+.2f} points"
            if new_acc is not None and old_acc is not None
            else "—",
        },
    ]
    vs_parent = version.metrics.get("vs_parent") or {}
    if previous is not None and previous.pk == version.parent_id and vs_parent.get("top1_agreement") is not None:
        source = vs_parent.get("inputs_source") or "measured"
        agreement = f"{vs_parent['top1_agreement']:.4f} top-1 agreement (on {source} inputs)"
    elif previous is None:
        agreement = "nothing to compare: no version is replaced"
    else:
        agreement = f"not measured: v{version.number} is not a variant of v{previous.number}"
    rows.append({"figure": "agreement with the version it replaces", "new": agreement, "old": "", "change": ""})
    return rows
