"""Agreement and verification on models that are not plain classifiers: maps, sequences, ZipMap, strings."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from jobs.tooling.datasets import Dataset
from jobs.tooling.evaluate import agreement, evaluate, verify_variant
from jobs.tooling.reference_models import float_input, make_model


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def segmenter(kernel: np.ndarray) -> onnx.ModelProto:
    """image (N, 1, H, W) -> 3x3 Conv -> Sigmoid -> mask (N, 1, H, W): a segmentation-style head."""
    nodes = [
        helper.make_node("Conv", ["image", "kernel"], ["logits"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["logits"], ["mask"]),
    ]
    return make_model(
        nodes,
        [float_input("image", ["N", 1, 16, 16])],
        [float_input("mask", ["N", 1, 16, 16])],
        [numpy_helper.from_array(kernel.astype(np.float32), "kernel")],
    )


def recognizer(weights: np.ndarray) -> onnx.ModelProto:
    """features (N, T, F) -> MatMul -> Softmax over classes -> (N, T, C), class 0 the CTC blank."""
    nodes = [
        helper.make_node("MatMul", ["features", "w"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["out"], axis=-1),
    ]
    return make_model(
        nodes,
        [float_input("features", ["N", 24, 8])],
        [float_input("out", ["N", 24, weights.shape[1]])],
        [numpy_helper.from_array(weights.astype(np.float32), "w")],
    )


def test_verify_variant__segmentation_model__is_judged_by_iou_of_its_thresholded_maps(tmp_path):
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((1, 1, 3, 3))
    parent = save(segmenter(kernel), tmp_path / "seg.onnx")
    close = save(segmenter(kernel * 1.0001), tmp_path / "close.onnx")
    other = save(segmenter(rng.standard_normal((1, 1, 3, 3))), tmp_path / "other.onnx")
    samples = Dataset({"image": rng.standard_normal((6, 1, 16, 16)).astype(np.float32)}, None, "images.npz")

    kept = verify_variant(parent, close, samples, budget_points=1.0)
    assert kept["inputs_source"] == "samples" and kept["source"] == "dataset images.npz"
    assert kept["primary_output"] == "mask" and kept["primary_metric"] == "iou"
    assert kept["fidelity"]["mask"]["within_budget"] is True and kept["verified"]

    changed = verify_variant(parent, other, samples, budget_points=1.0)
    assert changed["primary_metric"] == "iou" and changed["primary_value"] < 0.9
    assert changed["fidelity"]["mask"]["pixel_flip_rate"] > 0.01
    assert changed["fidelity"]["mask"]["within_budget"] is False
    assert not changed["verified"] and "iou" in changed["reason"]


def greedy_ctc(probabilities: np.ndarray) -> list[list[int]]:
    """Written apart from the console's decoder, to check it: argmax, group runs, drop blanks."""
    return [[k for k, _ in itertools.groupby(row.argmax(-1).tolist()) if k != 0] for row in probabilities]


def test_verify_variant__sequence_model__is_judged_by_decoded_ctc_equality(tmp_path):
    rng = np.random.default_rng(1)
    weights = rng.standard_normal((8, 5)) * 2
    parent = save(recognizer(weights), tmp_path / "rec.onnx")
    noisy = save(recognizer(weights + rng.standard_normal(weights.shape) * 0.4), tmp_path / "noisy.onnx")
    features = rng.standard_normal((20, 24, 8)).astype(np.float32)
    samples = Dataset({"features": features}, None, "lines.npz")

    same = verify_variant(parent, parent, samples)
    assert same["primary_metric"] == "ctc_decoded_equality" and same["primary_value"] == 1.0 and same["verified"]

    figures = agreement(parent, noisy, samples)
    run = [ort.InferenceSession(str(p)).run(None, {"features": features})[0] for p in (parent, noisy)]
    decoded = [greedy_ctc(outputs) for outputs in run]
    expected = np.mean([a == b for a, b in zip(*decoded, strict=True)])
    assert figures["primary_metric"] == "ctc_decoded_equality"
    assert figures["primary_value"] == expected < 1.0
    assert figures["fidelity"]["out"]["step_argmax_agreement"] == np.mean(run[0].argmax(-1) == run[1].argmax(-1))
    assert figures["top1_agreement"] is None  # no class axis of a classifier


def test_agreement__metric_chosen_by_the_user__replaces_the_inferred_one(tmp_path):
    rng = np.random.default_rng(1)
    path = save(recognizer(rng.standard_normal((8, 5))), tmp_path / "rec.onnx")
    figures = agreement(path, path, metrics={"out": "step_argmax_agreement"})
    # 32 sequences of 24 steps: the units are the 32 independent sequences, not the 768 steps they hold.
    assert figures["fidelity"]["out"] == {"metric": "step_argmax_agreement", "value": 1.0, "units": 32}
    assert figures["primary_metric"] == "step_argmax_agreement" and figures["inputs_source"] == "generated"


def test_agreement__feeds_given_as_samples__say_so(tmp_path):
    rng = np.random.default_rng(1)
    path = save(recognizer(rng.standard_normal((8, 5))), tmp_path / "rec.onnx")
    feeds = [{"features": rng.standard_normal((3, 24, 8)).astype(np.float32)} for _ in range(2)]
    figures = agreement(path, path, feeds=feeds, feeds_source="samples")
    assert figures["inputs_source"] == "samples" and figures["source"] == "sample inputs" and figures["rows"] == 6


def test_verify_variant__default_skl2onnx_classifier_with_zipmap__compares_its_maps_without_crashing(tmp_path):
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    features = features.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classifier = LogisticRegression(max_iter=500).fit(features, labels)
    path = save(to_onnx(classifier, features[:1]), tmp_path / "iris.onnx")  # default options: a ZipMap output
    assert [o.type.WhichOneof("value") for o in onnx.load(str(path)).graph.output] == ["tensor_type", "sequence_type"]

    generated = verify_variant(path, path)
    assert generated["verified"] and generated["top1_agreement"] == 1.0
    assert generated["fidelity"]["output_probability"] == {"metric": "top1_agreement", "value": 1.0, "units": 32}
    assert generated["fidelity"]["output_label"] == {"metric": "exact_equality", "value": 1.0, "units": 32}
    assert generated["primary_output"] == "output_probability"

    labeled = Dataset({"X": features}, labels.astype(np.int64), "iris.npz")
    on_dataset = verify_variant(path, path, labeled)
    assert on_dataset["inputs_source"] == "dataset" and on_dataset["rows"] == len(labels)
    assert on_dataset["top1_agreement"] == 1.0
    assert evaluate(path, labeled)["accuracy"] == np.mean(classifier.predict(features) == labels)


def test_verify_variant__string_output__is_compared_by_exact_equality(tmp_path):
    nodes = [helper.make_node("Identity", ["words"], ["same"])]
    inputs = [helper.make_tensor_value_info("words", TensorProto.STRING, ["N"])]
    outputs = [helper.make_tensor_value_info("same", TensorProto.STRING, ["N"])]
    path = save(make_model(nodes, inputs, outputs), tmp_path / "strings.onnx")
    result = verify_variant(path, path)
    assert result["verified"] and result["fidelity"]["same"] == {"metric": "exact_equality", "value": 1.0, "units": 32}
    assert result["max_abs_diff"] is None  # no float output to take differences of
