"""The issue's pruning case on a small classifier: perfect agreement on generated inputs, not on real ones.

A file-type-style classifier reads 32 byte values. Generated integer inputs are all zeros, where every layer's
output is its bias: pruning the weights changes nothing there, so the pruned variant "agrees" with its parent on
every generated row. On real byte values it disagrees on more than one row in a hundred.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from jobs.tooling.benchmark import download_size
from jobs.tooling.choose import choose_variant
from jobs.tooling.datasets import Dataset
from jobs.tooling.evaluate import evaluate, verify_variant
from jobs.tooling.prune import prune
from jobs.tooling.reference_models import make_model


def byte_classifier(path: Path) -> Path:
    rng = np.random.default_rng(0)
    initializers = [
        numpy_helper.from_array((rng.standard_normal((32, 64)) / np.sqrt(32) / 128).astype(np.float32), "w1"),
        numpy_helper.from_array(np.zeros(64, np.float32), "b1"),
        numpy_helper.from_array((rng.standard_normal((64, 10)) / 8).astype(np.float32), "w2"),
        numpy_helper.from_array((rng.standard_normal(10) * 0.1).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Cast", ["bytes"], ["values"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["values", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("MatMul", ["a1", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["scores"]),
    ]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("bytes", TensorProto.INT32, ["N", 32])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])],
        initializers,
    )
    onnx.save(model, str(path))
    return path


@pytest.fixture
def pruned_case(tmp_path):
    parent = byte_classifier(tmp_path / "filetype.onnx")
    pruned = tmp_path / "pruned.onnx"
    prune(parent, pruned, sparsity=0.3)
    rows = np.random.default_rng(1).integers(0, 256, (200, 32)).astype(np.int32)
    # Labeled by the parent itself, so the parent is 100% accurate on it, as in the text-line set.
    labels = ort.InferenceSession(str(parent)).run(None, {"bytes": rows})[0].argmax(axis=1)
    return parent, pruned, Dataset({"bytes": rows}, labels.astype(np.int64), "files.npz")


def row(name: str, path: Path, verification: dict, accuracy: float | None = None) -> dict:
    """The row the optimize job builds; the file sizes are the downloads (pruning keeps the file's size)."""
    return {
        "name": name,
        "transform": "prune",
        "lossy": True,
        "size_bytes": download_size(path),
        "latency_ms": 1.0,
        "latency_ratio": 1.0,
        "latency_ci": [0.97, 1.03],  # a tie: the size objective accepts it
        "accuracy": accuracy,
        "agreement": verification["top1_agreement"],
        "fidelity_metric": verification["primary_metric"],
        "fidelity": verification["primary_value"],
        "inputs_source": verification["inputs_source"],
        "runnable_on_device": True,
    }


def test_pruned_classifier__on_generated_inputs__agrees_fully_and_is_refused_as_unverified(pruned_case):
    parent, pruned, _ = pruned_case
    generated = verify_variant(parent, pruned)
    assert generated["inputs_source"] == "generated"
    assert generated["top1_agreement"] == 1.0 and generated["verified"]

    parent_row = {"size_bytes": download_size(parent), "latency_ms": 1.0, "accuracy": None}
    candidate = row("prune(sparsity=0.3)", pruned, generated)
    # What the chooser did before: rows without the lossy and inputs_source fields picked it.
    before = {key: candidate[key] for key in ("name", "size_bytes", "latency_ms", "agreement", "runnable_on_device")}
    assert choose_variant(parent_row, [before])["choice"] == "prune(sparsity=0.3)"

    decision = choose_variant(parent_row, [candidate])
    assert decision["choice"] is None
    assert decision["reasons"]["prune(sparsity=0.3)"] == (
        "not verified on real inputs: attach sample inputs or a labeled dataset"
    )


def test_pruned_classifier__on_a_dataset__is_refused_over_budget(pruned_case):
    parent, pruned, dataset = pruned_case
    on_dataset = verify_variant(parent, pruned, dataset)
    assert on_dataset["inputs_source"] == "dataset" and on_dataset["top1_agreement"] < 0.95
    parent_accuracy = evaluate(parent, dataset)["accuracy"]
    pruned_accuracy = evaluate(pruned, dataset)["accuracy"]
    assert parent_accuracy == 1.0 and pruned_accuracy < 0.95

    parent_row = {"size_bytes": download_size(parent), "latency_ms": 1.0, "accuracy": parent_accuracy}
    candidate = row("prune(sparsity=0.3)", pruned, on_dataset, accuracy=pruned_accuracy)
    decision = choose_variant(parent_row, [candidate], accept_unverified=True)
    assert decision["choice"] is None
    assert decision["reasons"]["prune(sparsity=0.3)"].endswith("accuracy points, over the 1-point budget")
