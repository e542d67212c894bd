"""Pick, among measured variants, the one to ship to a device type: smallest or fastest within an accuracy budget.

Pure function over plain dicts so the API, a Celery task and the benchmark all call it the same way.

Rules, in the order a candidate is judged (the first that fails is its reason):
1. it runs on the device type;
2. it keeps within the accuracy budget: accuracy points against the parent's when both were measured on labels,
   else its primary fidelity metric in that metric's own words (a lossy variant's share of few units judged by
   what it shows at 95% confidence: ``fidelity.shown_within_budget``), else 100 x (1 - top-1 agreement); nothing measured means
   an unknown drop, and a refusal;
3. a lossy variant (quantized, pruned, low-rank, fp16) verified only on generated inputs is refused, "not verified
   on real inputs", unless the caller accepts unverified variants: generated inputs can agree perfectly where
   real ones do not (all-zero byte arrays, 1x1 images);
4. it is not slower than its parent beyond noise: with a latency interval, its lower bound is above 1; without
   one, LATENCY_TOLERANCE and LATENCY_NOISE_FLOOR_MS;
5. for the latency objective it is faster beyond noise (the interval's upper bound below 1; ties go to the
   parent), for the size objective it is smaller.
"""

from __future__ import annotations

from typing import Any

from jobs.tooling import fidelity

OBJECTIVES = ("size", "latency")
# Latency measured on a busy 2-core box jitters by a few percent; within this a variant counts as "not slower".
LATENCY_TOLERANCE = 0.05
# Below this many milliseconds a difference is timer and scheduler noise, not the model (tiny models run in µs).
LATENCY_NOISE_FLOOR_MS = 0.01
# Transforms whose output computes something else than its parent; the rest (graph optimization, the ORT format,
# opset conversion, rewrites that make a model runnable) compute the same function.
LOSSY_TRANSFORM_PREFIXES = ("quantize", "prune", "svd", "fp16")
NOT_VERIFIED_ON_REAL_INPUTS = "not verified on real inputs: attach sample inputs or a labeled dataset"


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


def is_lossy(candidate: dict[str, Any]) -> bool:
    """The row's ``lossy`` when it says, else judged from its ``transform`` name."""
    if candidate.get("lossy") is not None:
        return bool(candidate["lossy"])
    return str(candidate.get("transform", "")).startswith(LOSSY_TRANSFORM_PREFIXES)


def choose_variant(
    parent: dict[str, Any],
    candidates: list[dict[str, Any]],
    *,
    objective: str = "size",
    budget_points: float = 1.0,
    accept_unverified: bool = False,
) -> dict[str, Any]:
    """Choose among ``candidates`` against ``parent`` (size_bytes, latency_ms, accuracy or None).

    A candidate row holds:
    - ``name``, ``size_bytes``, ``latency_ms`` (the parent's latency times the paired ratio), ``runnable_on_device``;
    - ``accuracy`` (fraction, measured on labels) and/or ``agreement`` (top-1 agreement, fraction), as before;
    - ``fidelity_metric`` and ``fidelity``: the primary fidelity metric and its value (``verify_variant``'s
      ``primary_metric`` and ``primary_value``), judged when there is no labeled accuracy; ``fidelity_units``:
      the units a share was counted on (``primary_units``), so that a share of few units must show the budget;
    - ``inputs_source``: "dataset", "samples" or "generated", where the fidelity was measured;
    - ``lossy``: True for quantized, pruned, SVD and fp16 variants (absent: judged from ``transform``);
    - ``latency_ci``: ``[low, high]`` interval of the variant/parent latency ratio (``paired_latency``'s
      ``ci_low``, ``ci_high``), and ``latency_ratio`` (its ``ratio``, for the reasons' words); without an interval
      the older tolerance rule applies; ``paired_parent_ms``: the parent's time in that same paired measurement,
      which the noise floor of ``slower_beyond_noise`` is judged on (else the parent's ``latency_ms``).
    Rows without the newer fields are judged as before.

    Returns ``{"choice": name or None, "reasons": {name: why picked or not}, "unverified": bool}``; None means keep
    the parent; ``unverified`` is True when the choice is a lossy variant verified on generated inputs only, which
    ``accept_unverified`` allows.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    reasons: dict[str, str] = {}
    eligible: list[tuple[str, dict[str, Any]]] = []
    for index, candidate in enumerate(candidates):
        name = str(candidate.get("name", f"candidate {index}"))
        rejection = _rejection(parent, candidate, objective, budget_points, accept_unverified)
        if rejection:
            reasons[name] = rejection
        else:
            eligible.append((name, candidate))
    if parent.get("runnable_on_device") is False:
        eligible = _not_slower_than_a_runnable_rewrite(eligible, reasons)
    if not eligible:
        return {"choice": None, "reasons": reasons, "unverified": False}

    if objective == "size":
        ranked = sorted(eligible, key=lambda item: (item[1]["size_bytes"], item[1]["latency_ms"]))
    else:
        ranked = sorted(eligible, key=lambda item: (item[1]["latency_ms"], item[1]["size_bytes"]))
    choice, best = ranked[0]
    unverified = _unverified(best)
    interval = _interval(best, parent)
    reasons[choice] = (
        f"picked: {'smallest' if objective == 'size' else 'fastest'} within the {budget_points:g}-point budget "
        f"({_ratio(best, parent, 'size_bytes')} of the parent's size, {_ratio(best, parent, 'latency_ms')} "
        f"of its latency{'; ' + interval if interval else ''})"
    )
    if unverified:
        reasons[choice] += "; unverified: its fidelity was measured on generated inputs only, as accepted"
    if parent.get("runnable_on_device") is False:
        reasons[choice] += "; the parent itself does not run on this device type"
    for name, _candidate in ranked[1:]:
        if objective == "size":
            reasons[name] = f"within budget but larger than {choice}"
        else:
            reasons[name] = f"within budget but slower than {choice}"
    return {"choice": choice, "reasons": reasons, "unverified": unverified}


def _not_slower_than_a_runnable_rewrite(
    eligible: list[tuple[str, dict[str, Any]]], reasons: dict[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    """Where the parent cannot run, the fastest eligible rewrite that computes the same function (make_runnable's)
    is what the device would otherwise get: a lossy variant slower than it is refused, as one slower than a
    runnable parent would be (both are timed against the same parent, so their times compare)."""
    faithful = [candidate for _, candidate in eligible if not is_lossy(candidate)]
    if not faithful:
        return eligible
    reference = min(faithful, key=lambda candidate: candidate["latency_ms"])
    kept = []
    for name, candidate in eligible:
        if is_lossy(candidate) and is_slower(candidate["latency_ms"], reference["latency_ms"]):
            reasons[name] = (
                f"slower than {reference.get('name', 'the runnable rewrite')}, which runs on this device type and "
                f"computes the parent's function ({candidate['latency_ms']:.3g} ms vs {reference['latency_ms']:.3g} ms)"
            )
        else:
            kept.append((name, candidate))
    return kept


def is_slower(candidate_ms: float, parent_ms: float) -> bool:
    """Slower beyond measurement noise: by more than LATENCY_TOLERANCE and more than LATENCY_NOISE_FLOOR_MS."""
    return candidate_ms > parent_ms * (1 + LATENCY_TOLERANCE) and candidate_ms - parent_ms > LATENCY_NOISE_FLOOR_MS


def slower_beyond_noise(latency_ci: list[float] | tuple[float, float], parent_ms: float) -> bool:
    """The whole interval of the variant/parent latency ratio lies above 1, by more than the timer's floor: 20% of
    a 0.04 ms model is 8 µs, which is the timer's, not the model's."""
    low = latency_ci[0]
    return low > 1 and (low - 1) * parent_ms > LATENCY_NOISE_FLOOR_MS


def budget_rejection(parent: dict[str, Any], candidate: dict[str, Any], budget_points: float) -> str | None:
    """Why the candidate is outside the accuracy budget (or its drop unknown); None when it is within."""
    labeled = candidate.get("accuracy") is not None and parent.get("accuracy") is not None
    metric, value = candidate.get("fidelity_metric"), candidate.get("fidelity")
    if not labeled and metric in fidelity.METRICS and value is not None:
        # Only a lossy variant on real inputs must show its budget on enough units: a rewrite computes the same
        # function (its fidelity guards against a broken rewrite, not a small loss few samples hide), and
        # generated inputs are refused as such (rule 3), whatever their count.
        real = candidate.get("inputs_source") != "generated"
        units = candidate.get("fidelity_units") if is_lossy(candidate) and real else None
        return fidelity.shown_within_budget(metric, value, budget_points, units)
    drop = accuracy_drop_points(parent, candidate)
    if drop is None:
        return "no accuracy or agreement measured, so its accuracy drop is unknown"
    if drop > budget_points:
        return f"loses {drop:.2f} accuracy points, over the {budget_points:g}-point budget"
    return None


def _unverified(candidate: dict[str, Any]) -> bool:
    return is_lossy(candidate) and candidate.get("inputs_source") == "generated"


def _rejection(
    parent: dict[str, Any], candidate: dict[str, Any], objective: str, budget_points: float, accept_unverified: bool
) -> str | None:
    if not candidate.get("runnable_on_device", False):
        return "does not run on this device type"
    over_budget = budget_rejection(parent, candidate, budget_points)
    if over_budget:
        return over_budget
    if _unverified(candidate) and not accept_unverified:
        return NOT_VERIFIED_ON_REAL_INPUTS
    if parent.get("runnable_on_device") is False:
        return None  # the parent cannot run there at all: any faithful variant that runs beats keeping it
    interval = candidate.get("latency_ci")
    if interval is not None:
        low, high = interval
        # The parent's time measured alongside the candidate when the row has it: a load spike during the
        # baseline's own runs would otherwise move the noise floor for every candidate (0.01 ms vs 0.12 ms seen).
        if slower_beyond_noise(interval, candidate.get("paired_parent_ms") or parent["latency_ms"]):
            # A slower variant is never the default pick, whatever it saves in size (measured, not assumed).
            return f"slower than its parent beyond noise ({_interval(candidate, parent)})"
        if objective == "latency" and high >= 1:
            return f"not faster than its parent beyond noise ({_interval(candidate, parent)}); a tie keeps the parent"
    else:
        if is_slower(candidate["latency_ms"], parent["latency_ms"]):
            return f"slower than its parent ({candidate['latency_ms']:.3g} ms vs {parent['latency_ms']:.3g} ms)"
        if objective == "latency" and candidate["latency_ms"] >= parent["latency_ms"]:
            return "no faster than its parent"
    if objective == "size" and candidate["size_bytes"] >= parent["size_bytes"]:
        return "no smaller than its parent"
    return None


def _interval(candidate: dict[str, Any], parent: dict[str, Any]) -> str:
    """ "latency ratio 0.950, interval 0.930-0.970" for a row with an interval; "" without one."""
    interval = candidate.get("latency_ci")
    if interval is None:
        return ""
    ratio = candidate.get("latency_ratio")
    if ratio is None and parent.get("latency_ms"):
        ratio = candidate["latency_ms"] / parent["latency_ms"]
    shown = f" {ratio:.3f}," if ratio is not None else ""
    return f"latency ratio{shown} interval {interval[0]:.3f}-{interval[1]:.3f}"


def _ratio(candidate: dict[str, Any], parent: dict[str, Any], key: str) -> str:
    return f"{candidate[key] / parent[key]:.0%}" if parent.get(key) else "n/a"
