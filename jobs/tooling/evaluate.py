"""Accuracy on a dataset, agreement between a variant and its parent, and the verified-variant rule.

A classifier is a model with an output holding a class axis (a float output of shape (rows, classes > 1), or a
ZipMap's list of maps): accuracy is top-1 against integer labels. Anything else is a regressor: mean absolute error
of its first float output. Agreement compares every output in the metric that fits it (``fidelity``), and keeps
the older figures: top-1 agreement of the class-axis output and absolute differences of the first float output.

Where the compared inputs came from is part of every answer (``inputs_source``): "dataset" (labeled), "samples"
(real inputs without labels) or "generated" (made up from the model's declared inputs, which say nothing about
real ones).
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

import numpy as np
import onnxruntime as ort

from jobs.tooling import fidelity
from jobs.tooling.common import PathLike, load_signature, open_session, run_session
from jobs.tooling.datasets import Dataset, as_dataset, cast_feeds, fixed_batch, iter_batches
from jobs.tooling.errors import TransformError
from jobs.tooling.inputs import TensorSpec, generate_inputs, graph_inputs

DEFAULT_MIN_TOP1_AGREEMENT = 0.9
DEFAULT_MAX_RELATIVE_ERROR = 0.1  # mean |child - parent| / mean |parent|, for models without a class axis
_GENERATED_BATCH = 8


def evaluate(model_path: PathLike, dataset: Dataset | PathLike, *, batch_size: int = 256) -> dict[str, Any]:
    """``{"task", "rows", "accuracy"}`` for classifiers (fraction 0..1) or ``{"task", "rows", "mae"}``."""
    specs = graph_inputs(load_signature(model_path))
    data = as_dataset(dataset, specs, require_labels=True)
    outputs: list[Any] = [
        fidelity.as_array(output) for output in predict(open_session(model_path), data, specs, batch_size=batch_size)
    ]
    labels = data.labels
    assert labels is not None  # as_dataset(require_labels=True) raises DatasetError for a dataset without labels
    class_index = class_axis_output(outputs)
    if class_index is not None and labels.ndim == 1 and labels.dtype.kind in "biu":
        predicted = np.argmax(outputs[class_index], axis=1)
        return {"task": "classification", "rows": data.rows, "accuracy": float(np.mean(predicted == labels))}
    predictions = outputs[first_float_output(outputs)]
    if predictions is None or predictions.dtype.kind not in "biuf":
        raise TransformError("the model has no numeric output to score against the labels")
    values = predictions.astype(np.float64).reshape(data.rows, -1)
    targets = labels.astype(np.float64).reshape(data.rows, -1)
    if values.shape != targets.shape:
        raise TransformError(f"labels have shape {labels.shape}; the model's prediction has shape {predictions.shape}")
    return {"task": "regression", "rows": data.rows, "mae": float(np.mean(np.abs(values - targets)))}


def predict(
    session: ort.InferenceSession, dataset: Dataset, specs: list[TensorSpec], *, batch_size: int = 256
) -> list[Any]:
    """All outputs over the dataset's rows, in batches when the first dimension allows, else row by row.

    Outputs are what onnxruntime returns: arrays, lists (a ZipMap's maps, one per row) or None."""
    chunks: list[list[Any]] = []
    for feeds, valid in iter_batches(dataset, specs, batch_size):
        chunks.append([_trim(output, valid) for output in run_session(session, feeds)])
    return _concat(chunks)


def agreement(
    parent_path: PathLike,
    child_path: PathLike,
    dataset: Dataset | PathLike | None = None,
    *,
    rows: int = 32,
    metrics: dict[str, str] | None = None,
    budget_points: float | None = None,
    feeds: list[dict[str, Any]] | None = None,
    feeds_source: str = "generated",
) -> dict[str, Any]:
    """How closely the child reproduces the parent on the dataset's inputs, on ``feeds`` (a list of feed dicts,
    "generated" or "samples" as ``feeds_source`` says), or else on ``rows`` generated inputs.

    ``metrics`` chooses the fidelity metric per output name (others are inferred); ``budget_points`` adds
    ``within_budget`` to each output's figures. See ``compare_outputs`` for the fields.
    """
    if feeds_source not in ("generated", "samples"):
        raise ValueError(f"feeds_source must be 'generated' or 'samples', not {feeds_source!r}")
    parent_signature = load_signature(parent_path)
    parent_specs = graph_inputs(parent_signature)
    parent = open_session(parent_path)
    child = open_session(child_path)  # TransformError when the variant does not load
    child_specs = graph_inputs(load_signature(child_path))
    if dataset is not None:
        data = as_dataset(dataset, parent_specs)
        parent_outputs = predict(parent, data, parent_specs)
        child_outputs = predict(child, data, child_specs)
        source, compared_rows = f"dataset {data.source}", data.rows
        inputs_source = "dataset" if data.labels is not None else "samples"
    else:
        feeds_list = feeds if feeds is not None else _generated_feeds(parent_signature, parent_specs, rows)
        parent_outputs = _concat([run_session(parent, _cast(f, parent_specs)) for f in feeds_list])
        child_outputs = _concat([run_session(child, _cast(f, child_specs)) for f in feeds_list])
        inputs_source = feeds_source if feeds is not None else "generated"
        source = "sample inputs" if inputs_source == "samples" else "generated inputs"
        compared_rows = sum(_rows(f) for f in feeds_list)
    names = [output.name for output in parent.get_outputs()]
    figures = compare_outputs(parent_outputs, child_outputs, names=names, metrics=metrics, budget_points=budget_points)
    return {"source": source, "inputs_source": inputs_source, "rows": compared_rows, **figures}


def verify_variant(
    parent_path: PathLike,
    child_path: PathLike,
    dataset: Dataset | PathLike | None = None,
    *,
    min_top1_agreement: float = DEFAULT_MIN_TOP1_AGREEMENT,
    max_relative_error: float = DEFAULT_MAX_RELATIVE_ERROR,
    metrics: dict[str, str] | None = None,
    budget_points: float | None = None,
    feeds: list[dict[str, Any]] | None = None,
    feeds_source: str = "generated",
) -> dict[str, Any]:
    """The verified-variant rule: the child loads, runs and agrees with its parent within tolerance.

    The tolerance applies to the primary output's fidelity metric: agreements, IoU and equalities (fractions) must
    reach ``min_top1_agreement``, a pixel flip rate stay under 1 - ``min_top1_agreement``, a relative L2 error
    under ``max_relative_error`` (cosine above 1 - it). This is the loose "it works" rule; the accuracy budget of
    a choice is ``choose.choose_variant``'s.

    Raises TransformError when the child does not load or run; returns ``agreement``'s figures with
    ``verified`` (bool) and ``reason`` otherwise, so a disagreeing variant can still be shown, marked unverified.
    """
    figures = agreement(
        parent_path,
        child_path,
        dataset,
        metrics=metrics,
        budget_points=budget_points,
        feeds=feeds,
        feeds_source=feeds_source,
    )
    reasons = []
    if figures["nonfinite_outputs"]:
        reasons.append(f"{figures['nonfinite_outputs']} outputs are NaN or infinite where the parent's are finite")
    metric, value = figures["primary_metric"], figures["primary_value"]
    if metric is None:
        skipped = "; ".join(f"{name}: {entry['skipped']}" for name, entry in figures["fidelity"].items())
        reasons.append(f"no output could be compared ({skipped})")
    elif metric == "top1_agreement":
        if value < min_top1_agreement:
            reasons.append(f"top-1 agreement {value:.1%} is below {min_top1_agreement:.0%}")
    elif metric == "relative_l2":
        if value > max_relative_error:
            reasons.append(f"relative error (L2) {value:.3g} is above {max_relative_error:g}")
    elif metric == "cosine":
        if value < 1 - max_relative_error:
            reasons.append(f"cosine similarity {value:.4g} is below {1 - max_relative_error:g}")
    elif metric == "pixel_flip_rate":
        if value > 1 - min_top1_agreement:
            reasons.append(f"{value:.1%} of pixels flip, above {1 - min_top1_agreement:.0%}")
    elif value < min_top1_agreement:
        reasons.append(f"{metric.replace('_', ' ')} {value:.1%} is below {min_top1_agreement:.0%}")
    return {
        **figures,
        "verified": not reasons,
        "reason": "; ".join(reasons) or "loads, runs and agrees with its parent within tolerance",
    }


def compare_outputs(
    parent: list[Any],
    child: list[Any],
    *,
    names: list[str] | None = None,
    metrics: dict[str, str] | None = None,
    budget_points: float | None = None,
) -> dict[str, Any]:
    """Figures comparing two runs' outputs (arrays, lists of maps, lists of arrays, strings or None):

    - ``fidelity``: ``{output name: {"metric", "value", ...}}`` per ``fidelity.compare`` (``"metric": "skip"``
      with ``"skipped"`` for an output nothing fits), ``within_budget`` when ``budget_points`` is given;
    - ``primary_output``, ``primary_metric``, ``primary_value``: the output a decision rests on
      (``fidelity.primary_output``), None when every output was skipped; ``primary_units``: how many units
      (rows, decisions, sequences) its share counts, None for a metric that is not a share;
    - the older figures: ``top1_agreement`` (of the first output judged by top-1, else None), ``max_abs_diff``,
      ``mean_abs_diff``, ``relative_error`` and ``compared_output`` (of the first float output; None without one),
      ``nonfinite_outputs`` (values NaN or infinite in the child where the parent's are finite, all outputs).

    Raises TransformError when the output counts differ or an array output has another shape in the child.
    """
    if len(parent) != len(child):
        raise TransformError(f"the variant has {len(child)} outputs; its parent has {len(parent)}")
    for index, (expected, actual) in enumerate(zip(parent, child, strict=True)):
        if isinstance(expected, np.ndarray) and isinstance(actual, np.ndarray) and expected.shape != actual.shape:
            raise TransformError(
                f"output {index} has shape {actual.shape} in the variant, {expected.shape} in the parent"
            )
    names = names or [f"output {index}" for index in range(len(parent))]
    per_output = fidelity.compare_all(names, parent, child, metrics, budget_points)
    primary = fidelity.primary_output(per_output, metrics)
    top1 = next((entry["value"] for entry in per_output.values() if entry["metric"] == "top1_agreement"), None)
    return {
        "fidelity": per_output,
        "primary_output": primary,
        "primary_metric": per_output[primary]["metric"] if primary else None,
        "primary_value": per_output[primary]["value"] if primary else None,
        "primary_units": per_output[primary].get("units") if primary else None,
        "top1_agreement": top1,
        **_differences([fidelity.as_array(o) for o in parent], [fidelity.as_array(o) for o in child]),
    }


def _differences(parent: list[np.ndarray | None], child: list[np.ndarray | None]) -> dict[str, Any]:
    """Absolute differences of the first float output, and non-finite values the child adds on any output."""
    pairs = [
        (index, expected.astype(np.float64), actual.astype(np.float64))
        for index, (expected, actual) in enumerate(zip(parent, child, strict=True))
        if _is_float(expected) and _is_float(actual) and expected.shape == actual.shape
    ]
    nonfinite = sum(int(np.sum(np.isfinite(p) & ~np.isfinite(c))) for _, p, c in pairs)
    if not pairs:
        return {
            "max_abs_diff": None,
            "mean_abs_diff": None,
            "relative_error": None,
            "nonfinite_outputs": nonfinite,
            "compared_output": None,
        }
    index, expected, actual = pairs[0]
    both_finite = np.isfinite(expected) & np.isfinite(actual)
    difference = np.abs(expected - actual)[both_finite]
    mean_abs_diff = float(difference.mean()) if difference.size else 0.0
    scale = float(np.abs(expected[both_finite]).mean()) if difference.size else 0.0
    return {
        "max_abs_diff": float(difference.max()) if difference.size else 0.0,
        "mean_abs_diff": mean_abs_diff,
        "relative_error": mean_abs_diff / scale if scale > 0 else mean_abs_diff,
        "nonfinite_outputs": nonfinite,
        "compared_output": index,
    }


def class_axis_output(outputs: list[Any]) -> int | None:
    return next(
        (i for i, out in enumerate(outputs) if _is_float(out) and out.ndim == 2 and out.shape[1] > 1),
        None,
    )


def first_float_output(outputs: list[Any]) -> int:
    """skl2onnx classifiers put the int64 label first; differences only mean something on scores."""
    return next((i for i, out in enumerate(outputs) if _is_float(out)), 0)


def _is_float(output: Any) -> TypeGuard[np.ndarray]:
    return isinstance(output, np.ndarray) and output.dtype.kind == "f"


def _generated_feeds(signature, specs: list[TensorSpec], rows: int) -> list[dict[str, np.ndarray]]:
    step = fixed_batch(specs) or _GENERATED_BATCH
    return [generate_inputs(signature, batch=step, seed=seed) for seed in range(math.ceil(rows / step))]


def _cast(feeds: dict[str, Any], specs: list[TensorSpec]) -> dict[str, Any]:
    """``cast_feeds`` for the arrays; a sequence input (a list) goes as it is."""
    arrays = {name: value for name, value in feeds.items() if isinstance(value, np.ndarray)}
    return {**feeds, **cast_feeds(arrays, specs)}


def _rows(feeds: dict[str, Any]) -> int:
    first = next(iter(feeds.values()), None)
    return len(first) if isinstance(first, np.ndarray | list) and np.ndim(first) else 1


def _trim(output: Any, valid: int) -> Any:
    """Drop the rows that padded a fixed batch: an array's first axis, or a ZipMap's maps (one per row)."""
    if isinstance(output, np.ndarray) and output.ndim:
        return output[:valid]
    if isinstance(output, list) and output and all(isinstance(item, dict) for item in output):
        return output[:valid]
    return output


def _concat(runs: list[list[Any]]) -> list[Any]:
    """Join each output over runs: arrays along rows, lists end to end; a scalar or None keeps the first run's."""
    joined: list[Any] = []
    for parts in zip(*runs, strict=True):
        if all(isinstance(part, np.ndarray) and part.ndim for part in parts):
            try:
                joined.append(np.concatenate(parts))
                continue
            except ValueError:  # rows of other sizes (a dynamic axis that varies by batch): compare the first
                pass
        if all(isinstance(part, list) for part in parts):
            joined.append([item for part in parts for item in part])
            continue
        joined.append(parts[0])
    return joined
