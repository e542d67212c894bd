"""Pick, among measured variants, the one to ship to a device type: smallest or fastest within an accuracy budget.

Pure function over plain dicts so the API, a Celery task and the benchmark all call it the same way.
"""

from __future__ import annotations

from typing import Any

OBJECTIVES = ("size", "latency")
# Latency measured on a busy 2-core box jitters by a few percent; within this a variant counts as "not slower".
LATENCY_TOLERANCE = 0.05
# Below this many milliseconds a difference is timer and scheduler noise, not the model (tiny models run in µs).
LATENCY_NOISE_FLOOR_MS = 0.01


def accuracy_drop_points(parent: dict[str, Any], candidate: dict[str, Any]) -> float | None:
    """Points (0..100) lost against the parent: measured accuracy when both have it, else 100 * (1 - agreement).

    Disagreeing with the parent on a share of rows can cost at most that share of accuracy, so without labels the
    disagreement is a safe bound on the drop.
    """
    if candidate.get("accuracy") is not None and parent.get("accuracy") is not None:
        return 100.0 * (parent["accuracy"] - candidate["accuracy"])
    if candidate.get("agreement") is not None:
        return 100.0 * (1.0 - candidate["agreement"])
    return None


def choose_variant(
    parent: dict[str, Any],
    candidates: list[dict[str, Any]],
    *,
    objective: str = "size",
    budget_points: float = 1.0,
) -> dict[str, Any]:
    """Choose among ``candidates`` (dicts with name, size_bytes, latency_ms, accuracy and/or agreement as
    fractions, runnable_on_device) against ``parent`` (size_bytes, latency_ms, accuracy).

    Returns ``{"choice": name or None, "reasons": {name: why picked or not}}``; None means keep the parent.
    Neither objective picks a variant slower than its parent (beyond LATENCY_TOLERANCE of measurement noise).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    reasons: dict[str, str] = {}
    eligible: list[tuple[str, dict[str, Any]]] = []
    for index, candidate in enumerate(candidates):
        name = str(candidate.get("name", f"candidate {index}"))
        rejection = _rejection(parent, candidate, objective, budget_points)
        if rejection:
            reasons[name] = rejection
        else:
            eligible.append((name, candidate))
    if not eligible:
        return {"choice": None, "reasons": reasons}

    if objective == "size":
        ranked = sorted(eligible, key=lambda item: (item[1]["size_bytes"], item[1]["latency_ms"]))
    else:
        ranked = sorted(eligible, key=lambda item: (item[1]["latency_ms"], item[1]["size_bytes"]))
    choice, best = ranked[0]
    reasons[choice] = (
        f"picked: {'smallest' if objective == 'size' else 'fastest'} within the {budget_points:g}-point budget "
        f"({_ratio(best, parent, 'size_bytes')} of the parent's size, {_ratio(best, parent, 'latency_ms')} "
        "of its latency)"
    )
    for name, _candidate in ranked[1:]:
        if objective == "size":
            reasons[name] = f"within budget but larger than {choice}"
        else:
            reasons[name] = f"within budget but slower than {choice}"
    return {"choice": choice, "reasons": reasons}


def is_slower(candidate_ms: float, parent_ms: float) -> bool:
    """Slower beyond measurement noise: by more than LATENCY_TOLERANCE and more than LATENCY_NOISE_FLOOR_MS."""
    return candidate_ms > parent_ms * (1 + LATENCY_TOLERANCE) and candidate_ms - parent_ms > LATENCY_NOISE_FLOOR_MS


def _rejection(parent: dict[str, Any], candidate: dict[str, Any], objective: str, budget_points: float) -> str | None:
    if not candidate.get("runnable_on_device", False):
        return "does not run on this device type"
    drop = accuracy_drop_points(parent, candidate)
    if drop is None:
        return "no accuracy or agreement measured, so its accuracy drop is unknown"
    if drop > budget_points:
        return f"loses {drop:.2f} accuracy points, over the {budget_points:g}-point budget"
    if is_slower(candidate["latency_ms"], parent["latency_ms"]):
        # A slower variant is never the default pick, whatever it saves in size (measured, not assumed).
        return f"slower than its parent ({candidate['latency_ms']:.3g} ms vs {parent['latency_ms']:.3g} ms)"
    if objective == "latency" and candidate["latency_ms"] == parent["latency_ms"]:
        return "no faster than its parent"
    if objective == "size" and candidate["size_bytes"] >= parent["size_bytes"]:
        return "no smaller than its parent"
    return None


def _ratio(candidate: dict[str, Any], parent: dict[str, Any], key: str) -> str:
    return f"{candidate[key] / parent[key]:.0%}" if parent.get(key) else "n/a"
