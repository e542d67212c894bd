"""Accuracy on a dataset, agreement between a variant and its parent, and the verified-variant rule.

A classifier is a model with an output holding a class axis (a float output of shape (rows, classes > 1)):
accuracy is top-1 against integer labels. Anything else is a regressor: mean absolute error of its first float
output. Agreement compares the class-axis output (top-1) and the first float output (absolute differences).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnxruntime as ort

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
    outputs = predict(open_session(model_path), data, specs, batch_size=batch_size)
    labels = data.labels
    assert labels is not None  # as_dataset(require_labels=True) raises DatasetError for a dataset without labels
    class_index = class_axis_output(outputs)
    if class_index is not None and labels.ndim == 1 and labels.dtype.kind in "biu":
        predicted = np.argmax(outputs[class_index], axis=1)
        return {"task": "classification", "rows": data.rows, "accuracy": float(np.mean(predicted == labels))}
    predictions = outputs[first_float_output(outputs)]
    values = predictions.astype(np.float64).reshape(data.rows, -1)
    targets = labels.astype(np.float64).reshape(data.rows, -1)
    if values.shape != targets.shape:
        raise TransformError(f"labels have shape {labels.shape}; the model's prediction has shape {predictions.shape}")
    return {"task": "regression", "rows": data.rows, "mae": float(np.mean(np.abs(values - targets)))}


def predict(
    session: ort.InferenceSession, dataset: Dataset, specs: list[TensorSpec], *, batch_size: int = 256
) -> list[np.ndarray]:
    """All outputs over the dataset's rows, in batches when the first dimension allows, else row by row."""
    chunks: list[list[np.ndarray]] = []
    for feeds, valid in iter_batches(dataset, specs, batch_size):
        outputs = run_session(session, feeds)
        chunks.append([output[:valid] if output.ndim else output for output in outputs])
    return _concat(chunks)


def agreement(
    parent_path: PathLike, child_path: PathLike, dataset: Dataset | PathLike | None = None, *, rows: int = 32
) -> dict[str, Any]:
    """How closely the child reproduces the parent on the dataset's inputs, or on ``rows`` generated inputs."""
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
    else:
        feeds_list = _generated_feeds(parent_signature, parent_specs, rows)
        parent_outputs = _concat([run_session(parent, feeds) for feeds in feeds_list])
        child_outputs = _concat([run_session(child, cast_feeds(feeds, child_specs)) for feeds in feeds_list])
        source, compared_rows = "generated inputs", sum(len(next(iter(f.values()))) for f in feeds_list)
    return {"source": source, "rows": compared_rows, **compare_outputs(parent_outputs, child_outputs)}


def verify_variant(
    parent_path: PathLike,
    child_path: PathLike,
    dataset: Dataset | PathLike | None = None,
    *,
    min_top1_agreement: float = DEFAULT_MIN_TOP1_AGREEMENT,
    max_relative_error: float = DEFAULT_MAX_RELATIVE_ERROR,
) -> dict[str, Any]:
    """The verified-variant rule: the child loads, runs and agrees with its parent within tolerance.

    Raises TransformError when the child does not load or run; returns the agreement figures with
    ``verified`` (bool) and ``reason`` otherwise, so a disagreeing variant can still be shown, marked unverified.
    """
    figures = agreement(parent_path, child_path, dataset)
    reasons = []
    if figures["nonfinite_outputs"]:
        reasons.append(f"{figures['nonfinite_outputs']} outputs are NaN or infinite where the parent's are finite")
    if figures["top1_agreement"] is not None:
        if figures["top1_agreement"] < min_top1_agreement:
            reasons.append(f"top-1 agreement {figures['top1_agreement']:.1%} is below {min_top1_agreement:.0%}")
    elif figures["relative_error"] > max_relative_error:
        reasons.append(f"relative error {figures['relative_error']:.3g} is above {max_relative_error:g}")
    return {
        **figures,
        "verified": not reasons,
        "reason": "; ".join(reasons) or "loads, runs and agrees with its parent within tolerance",
    }


def compare_outputs(parent: list[np.ndarray], child: list[np.ndarray]) -> dict[str, Any]:
    if len(parent) != len(child):
        raise TransformError(f"the variant has {len(child)} outputs; its parent has {len(parent)}")
    for index, (expected, actual) in enumerate(zip(parent, child, strict=True)):
        if expected.shape != actual.shape:
            raise TransformError(
                f"output {index} has shape {actual.shape} in the variant, {expected.shape} in the parent"
            )
    class_index = class_axis_output(parent)
    top1 = None
    if class_index is not None:
        top1 = float(np.mean(np.argmax(parent[class_index], axis=1) == np.argmax(child[class_index], axis=1)))
    index = first_float_output(parent)
    expected, actual = parent[index].astype(np.float64), child[index].astype(np.float64)
    both_finite = np.isfinite(expected) & np.isfinite(actual)
    difference = np.abs(expected - actual)[both_finite]
    mean_abs_diff = float(difference.mean()) if difference.size else 0.0
    scale = float(np.abs(expected[both_finite]).mean()) if difference.size else 0.0
    return {
        "top1_agreement": top1,
        "max_abs_diff": float(difference.max()) if difference.size else 0.0,
        "mean_abs_diff": mean_abs_diff,
        "relative_error": mean_abs_diff / scale if scale > 0 else mean_abs_diff,
        "nonfinite_outputs": int(np.sum(np.isfinite(expected) & ~np.isfinite(actual))),
        "compared_output": index,
    }


def class_axis_output(outputs: list[np.ndarray]) -> int | None:
    return next(
        (i for i, out in enumerate(outputs) if out.dtype.kind == "f" and out.ndim == 2 and out.shape[1] > 1), None
    )


def first_float_output(outputs: list[np.ndarray]) -> int:
    """skl2onnx classifiers put the int64 label first; differences only mean something on scores."""
    return next((i for i, out in enumerate(outputs) if out.dtype.kind == "f"), 0)


def _generated_feeds(signature, specs: list[TensorSpec], rows: int) -> list[dict[str, np.ndarray]]:
    step = fixed_batch(specs) or _GENERATED_BATCH
    return [generate_inputs(signature, batch=step, seed=seed) for seed in range(math.ceil(rows / step))]


def _concat(runs: list[list[np.ndarray]]) -> list[np.ndarray]:
    return [np.concatenate(parts) if parts[0].ndim else parts[0] for parts in zip(*runs, strict=True)]
