"""How faithfully a variant reproduces its parent, per output, in a metric that fits what the output is.

Pure numpy over the values onnxruntime returns (arrays, lists of maps from a ZipMap, lists of arrays, None).
``infer_metric`` picks a default metric from an output's description (``describe_output``, or a declared spec
``{"name", "dtype", "shape"}``); a caller may choose another per output. Every metric is a fraction, and an
accuracy budget of ``b`` points reads in the metric's own words: an agreement, IoU or cosine of at least
``1 - b/100``, a flip rate or relative error of at most ``b/100`` (budget 1: "decisions agree on at least 99% of
frames", "at most 1% of pixels flip").

Inferred defaults, by shape (N rows first) and values:
- float whose name says embedding, feature, hidden, encoding, state, cache or box: ``relative_l2``, whatever
  its shape;
- float (N, C>1): ``top1_agreement`` (a class axis);
- float (N,) or (N, 1) with values in [0, 1]: ``decision_agreement`` at 0.5 (a detector's or voice activity score);
- float (N, H, W) or (N, C, H, W) maps: ``iou`` of thresholded maps (0.5 for values in [0, 1], 0 for logits),
  ``pixel_flip_rate`` reported with it;
- float (N, T, C) with a class axis (rows of the last axis sum to 1, log-probabilities, or a sequence name):
  ``ctc_decoded_equality`` (greedy CTC: argmax per step, repeats collapsed, blank 0 dropped), with
  ``step_argmax_agreement``; another 3-D float is a map (``iou``) when its values lie in [0, 1], else
  compared by distance;
- other floats (embeddings, regressions): ``relative_l2``, with ``cosine``;
- integers, booleans and strings: ``exact_equality``;
- a sequence of maps (ZipMap): the maps' values as a matrix, keys sorted, judged by ``top1_agreement``;
- anything else (None, a map, a sequence of tensors of varying shapes): skipped with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

SKIP = "skip"


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    words: str  # how the budget reads: "{bound}" is replaced by the bound


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("top1_agreement", True, "top-1 agreement of at least {bound}"),
        Metric("decision_agreement", True, "decisions agree on at least {bound} of rows"),
        Metric("step_argmax_agreement", True, "per-step argmax agrees on at least {bound} of steps"),
        Metric("ctc_decoded_equality", True, "at least {bound} of decoded sequences are equal"),
        Metric("iou", True, "IoU of thresholded maps of at least {bound}"),
        Metric("pixel_flip_rate", False, "at most {bound} of pixels flip"),
        Metric("relative_l2", False, "relative L2 error of at most {bound}"),
        Metric("cosine", True, "cosine similarity of at least {bound}"),
        Metric("exact_equality", True, "at least {bound} of values are exactly equal"),
    )
}

# Name fragments of floats to compare by distance whatever their shape: embeddings, recurrent state, boxes.
_DISTANCE_WORDS = ("embed", "feature", "hidden", "encod", "pooler", "vector", "latent", "state", "cache", "box")
_MAP_WORDS = ("mask", "seg", "heatmap", "map", "saliency", "depth")
_SEQUENCE_WORDS = ("ctc", "seq", "char", "token", "text", "rec")
_SCORE_WORDS = ("prob", "score", "sigmoid", "vad", "speech", "conf")


# Metrics that are a share of countable units (rows, decisions, sequences, steps, values): ``compare`` reports as
# ``units`` the independent items the share was counted over, the rows (first axis): the steps of one line or the
# values of one row are judged on the same input and fail together, so counting them one by one would claim a
# confidence the sample does not give. A share pooled over rows of equal size is the mean of per-row shares in
# [0, 1], whose variance is at most p(1 - p), so the Wilson bound on the rows is conservative. A share measured on
# few units says little: 12 of 12 text lines agreeing shows, at 95% confidence, only that at least 80% agree.
# ``shown_within_budget`` judges the share's one-sided lower bound.
PROPORTIONS = frozenset(
    ("top1_agreement", "decision_agreement", "step_argmax_agreement", "ctc_decoded_equality", "exact_equality")
)
CONFIDENCE = 0.95


def bound(metric: str, budget_points: float) -> float:
    """The metric's threshold for an accuracy budget in points: 1 - b/100 (higher is better) or b/100."""
    share = budget_points / 100.0
    return 1.0 - share if METRICS[metric].higher_is_better else share


def within_budget(metric: str, value: float, budget_points: float) -> bool:
    """``value`` of ``metric`` meets a budget of ``budget_points`` (see the module docstring for the words)."""
    limit = bound(metric, budget_points)
    slack = 1e-9  # 0.99 computed as 99/100 must pass a bound of 1 - 1/100
    return value >= limit - slack if METRICS[metric].higher_is_better else value <= limit + slack


def shown_share(value: float, units: int, confidence: float = CONFIDENCE) -> float:
    """The share that ``value`` measured on ``units`` shows at ``confidence``: the one-sided lower bound of the
    Wilson score interval (scipy's), which stays inside [0, 1] and is not zero for a perfect small sample."""
    agreeing = min(units, max(0, round(value * units)))
    two_sided = 1 - 2 * (1 - confidence)
    return float(stats.binomtest(agreeing, units).proportion_ci(two_sided, method="wilson").low)


def units_needed(budget_points: float, confidence: float = CONFIDENCE) -> int:
    """How many units must all agree for a share to show ``1 - b/100`` at ``confidence`` (Wilson, p = 1):
    n / (n + z^2) >= bound gives n >= z^2 bound / (1 - bound)."""
    limit = 1.0 - budget_points / 100.0
    z = float(stats.norm.ppf(confidence))
    return math.ceil(z * z * limit / max(1.0 - limit, 1e-12))


def shown_within_budget(metric: str, value: float, budget_points: float, units: int | None) -> str | None:
    """None when ``value`` shows the budget; else why not. A share of countable units (``PROPORTIONS``) must show
    it at CONFIDENCE on the units measured; other metrics (means of distances, IoU over maps) by their value."""
    if not within_budget(metric, value, budget_points):
        return f"{metric} {value:.4g} is outside the {budget_points:g}-point budget (needs {budget_words(metric, budget_points)})"
    if metric not in PROPORTIONS or not units:
        return None
    shown = shown_share(value, units, CONFIDENCE)
    if within_budget(metric, shown, budget_points):
        return None
    return (
        f"{metric} {value:.4g} on {units} units is too few to show the {budget_points:g}-point budget: at "
        f"{CONFIDENCE:.0%} confidence it shows only {shown:.3g} (needs {budget_words(metric, budget_points)}); "
        f"attach sample inputs with at least {units_needed(budget_points)} units (sample rows: lines, files, "
        "windows), more where some disagree"
    )


def budget_words(metric: str, budget_points: float) -> str:
    limit = bound(metric, budget_points)
    shown = f"{limit:.4g}" if metric == "cosine" else f"{limit:.2%}".replace(".00%", "%")
    return METRICS[metric].words.format(bound=shown)


def describe_output(name: str, value: Any) -> dict[str, Any]:
    """What ``infer_metric`` needs to know of an output, from the parent's values: kind, dtype, shape, range."""
    meta: dict[str, Any] = {"name": name}
    if value is None:
        return {**meta, "kind": "none"}
    if isinstance(value, dict):
        return {**meta, "kind": "map"}
    if isinstance(value, list):
        if value and all(isinstance(item, dict) for item in value):
            return {**meta, "kind": "sequence_of_maps", "rows": len(value)}
        return {**meta, "kind": "sequence", "rows": len(value)}
    array = np.asarray(value)
    if _is_text(array):
        return {**meta, "kind": "tensor", "dtype": "string", "shape": list(array.shape)}
    meta.update({"kind": "tensor", "dtype": array.dtype.name, "shape": list(array.shape)})
    if array.dtype.kind == "f" and array.size:
        finite = array[np.isfinite(array)]
        if finite.size:
            meta["min"], meta["max"] = float(finite.min()), float(finite.max())
        if array.ndim >= 2 and array.shape[-1] > 1:
            sums = np.sum(array.astype(np.float64), axis=-1)
            meta["sums_to_one"] = bool(np.all(np.abs(sums - 1) < 1e-3))
    return meta


def infer_metric(output_meta: dict[str, Any]) -> str:
    """The default metric for an output (``describe_output``'s dict, or a declared ``{"name", "dtype", "shape"}``);
    ``SKIP`` when no metric fits (``skip_reason`` says why)."""
    kind = output_meta.get("kind", "tensor")
    name = str(output_meta.get("name", "")).lower()
    dtype = str(output_meta.get("dtype", ""))
    if kind == "sequence_of_maps" or (dtype == "sequence_type" and "prob" in name):
        return "top1_agreement"
    if kind != "tensor" or dtype in ("sequence_type", "map_type", "optional_type", "unknown", ""):
        return SKIP
    if dtype == "string" or dtype.startswith(("int", "uint", "bool")):
        return "exact_equality"
    if not dtype.startswith(("float", "bfloat")):
        return SKIP
    shape = output_meta.get("shape")
    rank = len(shape) if shape is not None else None
    low, high = output_meta.get("min"), output_meta.get("max")
    in_unit_range = low is not None and high is not None and low >= 0 and high <= 1
    range_known = low is not None
    last = shape[-1] if shape else None
    if any(word in name for word in _DISTANCE_WORDS):
        return "relative_l2"
    if rank == 2 and last != 1:  # a symbolic width counts as a class axis too
        return "top1_agreement"
    if rank in (1, 2):  # (N,) or (N, 1)
        if in_unit_range or (not range_known and any(word in name for word in _SCORE_WORDS)):
            return "decision_agreement"
        return "relative_l2"
    if rank == 3:
        if any(word in name for word in _MAP_WORDS):
            return "iou"
        sums_to_one = output_meta.get("sums_to_one", False)
        log_probabilities = high is not None and high <= 0
        if sums_to_one or log_probabilities or any(word in name for word in _SEQUENCE_WORDS):
            return "ctc_decoded_equality"
        return "iou" if in_unit_range else "relative_l2"
    if rank == 4:
        return "iou"
    return "relative_l2"


def skip_reason(output_meta: dict[str, Any]) -> str:
    kind = output_meta.get("kind", "tensor")
    if kind == "none":
        return "the output is empty (None)"
    if kind == "map":
        return "the output is a single map, which has no rows to compare"
    if kind == "sequence":
        return "the output is a sequence whose elements do not stack into one array"
    return f"no fidelity metric fits an output of type {output_meta.get('dtype', 'unknown')}"


def as_array(value: Any) -> np.ndarray | None:
    """A comparable array for an output: a ZipMap's list of maps as a (rows, keys) matrix with keys sorted, a
    sequence of same-shaped tensors stacked; None when the value has no such form."""
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, list):
        if not value:
            return None
        if all(isinstance(item, dict) for item in value):
            keys = sorted(value[0], key=str)
            if any(sorted(item, key=str) != keys for item in value):
                return None
            return np.array([[item[key] for key in keys] for item in value])
        try:
            return np.stack([np.asarray(item) for item in value])
        except ValueError:
            return None
    return np.asarray(value)


def compare(name: str, parent: Any, child: Any, metric: str | None = None) -> dict[str, Any]:
    """One output's fidelity: ``{"metric", "value", ...secondary figures}`` or ``{"metric": "skip", "skipped"}``.

    ``metric`` None infers it from the parent's values. Never raises for an output's type or shape: what cannot be
    compared is skipped with the reason.
    """
    meta = describe_output(name, parent)
    if meta["kind"] == "sequence" and as_array(parent) is not None:
        meta = {**describe_output(name, as_array(parent)), "kind": "tensor"}  # a sequence of same-shaped tensors
    if metric == SKIP:
        return {"metric": SKIP, "skipped": "skipped as chosen"}
    chosen = metric or infer_metric(meta)
    if chosen == SKIP:
        return {"metric": SKIP, "skipped": skip_reason(meta)}
    if chosen not in METRICS:
        return {"metric": SKIP, "skipped": f"unknown metric {chosen!r}; choose one of {', '.join(METRICS)}"}
    if isinstance(parent, list) and isinstance(child, list) and parent and isinstance(parent[0], dict):
        parent_keys = sorted(parent[0], key=str)
        if not child or not isinstance(child[0], dict) or sorted(child[0], key=str) != parent_keys:
            return {"metric": SKIP, "skipped": "the variant's maps have other keys than the parent's"}
    expected, actual = as_array(parent), as_array(child)
    if expected is None or actual is None:
        return {"metric": SKIP, "skipped": skip_reason(meta if expected is None else describe_output(name, child))}
    if expected.shape != actual.shape:
        return {
            "metric": SKIP,
            "skipped": f"shape {list(actual.shape)} in the variant, {list(expected.shape)} in the parent",
        }
    if expected.size == 0:
        return {"metric": SKIP, "skipped": "the output is empty"}
    text = _is_text(expected) or _is_text(actual)
    if text and chosen != "exact_equality":
        return {"metric": SKIP, "skipped": f"{chosen} needs numbers; the output holds strings"}
    if text:
        equal = expected.astype(str) == actual.astype(str)
        return {"metric": chosen, "value": float(np.mean(equal)), "units": _rows(expected)}
    result: dict[str, Any] = {"metric": chosen, **_COMPARERS[chosen](expected, actual)}
    if expected.dtype.kind == "f" or actual.dtype.kind == "f":
        nonfinite = int(np.sum(np.isfinite(expected.astype(np.float64)) & ~np.isfinite(actual.astype(np.float64))))
        if nonfinite:
            result["nonfinite"] = nonfinite
    return result


def compare_all(
    names: list[str],
    parent: list[Any],
    child: list[Any],
    metrics: dict[str, str] | None = None,
    budget_points: float | None = None,
) -> dict[str, dict[str, Any]]:
    """``compare`` for every output, by position, named by the parent; ``within_budget`` added when a budget is
    given. ``metrics`` maps output names to a chosen metric (or ``SKIP``); others are inferred."""
    chosen = metrics or {}
    figures = {}
    for name, expected, actual in zip(names, parent, child, strict=True):
        entry = compare(name, expected, actual, chosen.get(name))
        if budget_points is not None and entry["metric"] != SKIP:
            entry["within_budget"] = within_budget(entry["metric"], entry["value"], budget_points)
        figures[name] = entry
    return figures


def primary_output(fidelity: dict[str, dict[str, Any]], metrics: dict[str, str] | None = None) -> str | None:
    """The output a decision rests on: the first one the caller chose a metric for, else the first compared one
    that is not an exact-equality of integers (a classifier's label output follows from its scores), else the
    first compared one; None when every output was skipped."""
    compared = [name for name, entry in fidelity.items() if entry["metric"] != SKIP]
    for name in compared:
        if metrics and name in metrics:
            return name
    return next((name for name in compared if fidelity[name]["metric"] != "exact_equality"), None) or next(
        iter(compared), None
    )


def ctc_greedy_decode(step_classes: np.ndarray, blank: int = 0) -> list[int]:
    """Greedy CTC: collapse repeated classes, then drop the blank."""
    decoded, previous = [], None
    for step in step_classes.tolist():
        if step != previous and step != blank:
            decoded.append(step)
        previous = step
    return decoded


def _is_text(array: np.ndarray) -> bool:
    if array.dtype.kind in "US":
        return True
    return array.dtype.kind == "O" and array.size > 0 and isinstance(array.flat[0], str | bytes)


def _threshold(expected: np.ndarray) -> float:
    """0.5 for probabilities, 0 for logits (sigmoid(0) = 0.5), judged from the parent's values."""
    finite = expected[np.isfinite(expected)]
    return 0.5 if finite.size and finite.min() >= 0 and finite.max() <= 1 else 0.0


def _top1(expected: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    if expected.ndim < 2:
        return {"value": float(np.mean(expected == actual)), "units": _rows(expected)}
    equal = np.argmax(expected, axis=-1) == np.argmax(actual, axis=-1)
    return {"value": float(np.mean(equal)), "units": _rows(expected)}


def _decision(expected: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    threshold = _threshold(expected)
    equal = (expected >= threshold) == (actual >= threshold)
    return {"value": float(np.mean(equal)), "units": _rows(expected), "threshold": threshold}


def _maps(expected: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    threshold = _threshold(expected)
    rows = len(expected) if expected.ndim > 1 else 1
    parent_mask = (expected >= threshold).reshape(rows, -1)
    child_mask = (actual >= threshold).reshape(rows, -1)
    union = np.sum(parent_mask | child_mask, axis=1)
    intersection = np.sum(parent_mask & child_mask, axis=1)
    # Two empty maps agree perfectly; mean over rows so a small object counts as much as a large one.
    per_row = np.where(union > 0, intersection / np.maximum(union, 1), 1.0)
    return {
        "iou": float(np.mean(per_row)),
        "pixel_flip_rate": float(np.mean(parent_mask != child_mask)),
        "threshold": threshold,
    }


def _iou(expected: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    figures = _maps(expected, actual)
    return {"value": figures.pop("iou"), **figures}


def _flip_rate(expected: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    figures = _maps(expected, actual)
    return {"value": figures.pop("pixel_flip_rate"), **figures}


def _steps(expected: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.argmax(expected, axis=-1), np.argmax(actual, axis=-1)


def _step_agreement(expected: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    parent_steps, child_steps = _steps(expected, actual)
    return {"value": float(np.mean(parent_steps == child_steps)), "units": _rows(expected)}


def _ctc(expected: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    parent_steps, child_steps = _steps(expected, actual)
    parent_steps, child_steps = (
        parent_steps.reshape(-1, parent_steps.shape[-1]),
        child_steps.reshape(-1, child_steps.shape[-1]),
    )
    equal = [ctc_greedy_decode(p) == ctc_greedy_decode(c) for p, c in zip(parent_steps, child_steps, strict=True)]
    return {
        "value": float(np.mean(equal)),
        "units": _rows(expected),
        "step_argmax_agreement": float(np.mean(parent_steps == child_steps)),
        "blank": 0,
    }


def _distances(expected: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    p = expected.astype(np.float64)
    c = actual.astype(np.float64)
    finite = np.isfinite(p) & np.isfinite(c)
    p, c = np.where(finite, p, 0.0), np.where(finite, c, 0.0)
    norm = float(np.linalg.norm(p))
    error = float(np.linalg.norm(c - p))
    rows = len(p) if p.ndim > 1 else 1
    p_rows, c_rows = p.reshape(rows, -1), c.reshape(rows, -1)
    norms = np.linalg.norm(p_rows, axis=1) * np.linalg.norm(c_rows, axis=1)
    dots = np.sum(p_rows * c_rows, axis=1)
    both_zero = (np.linalg.norm(p_rows, axis=1) == 0) & (np.linalg.norm(c_rows, axis=1) == 0)
    cosine = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.where(both_zero, 1.0, 0.0))
    return {
        # A parent of all zeros has no scale: the child's distance from it is the error itself.
        "relative_l2": error / norm if norm > 0 else error,
        "cosine": float(np.mean(cosine)),
        "max_abs_diff": float(np.max(np.abs(c - p))) if p.size else 0.0,
    }


def _relative_l2(expected: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    figures = _distances(expected, actual)
    return {"value": figures.pop("relative_l2"), **figures}


def _cosine(expected: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    figures = _distances(expected, actual)
    return {"value": figures.pop("cosine"), **figures}


def _exact(expected: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    return {"value": float(np.mean(expected == actual)), "units": _rows(expected)}


def _rows(expected: np.ndarray) -> int:
    """The independent items a share counts: the rows of the first axis (one for a scalar)."""
    return int(expected.shape[0]) if expected.ndim else 1


_COMPARERS = {
    "top1_agreement": _top1,
    "decision_agreement": _decision,
    "step_argmax_agreement": _step_agreement,
    "ctc_decoded_equality": _ctc,
    "iou": _iou,
    "pixel_flip_rate": _flip_rate,
    "relative_l2": _relative_l2,
    "cosine": _cosine,
    "exact_equality": _exact,
}
