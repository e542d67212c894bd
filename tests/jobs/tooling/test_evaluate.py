from __future__ import annotations

import shutil

import numpy as np
import onnxruntime as ort
import pytest

from jobs.tooling.datasets import Dataset
from jobs.tooling.errors import DatasetError, TransformError
from jobs.tooling.evaluate import agreement, evaluate, verify_variant
from jobs.tooling.prune import prune


def test_evaluate__digits_npz__gives_the_same_accuracy_as_scikit_learn(digits):
    result = evaluate(digits.model, digits.npz)
    assert result["task"] == "classification" and result["rows"] == len(digits.y_test)
    assert result["accuracy"] == pytest.approx(digits.sklearn_accuracy, abs=0.005)


def test_evaluate__digits_csv__gives_the_same_accuracy_as_npz(digits):
    assert evaluate(digits.model, digits.csv)["accuracy"] == evaluate(digits.model, digits.npz)["accuracy"]


def test_evaluate__regressor__reports_mean_absolute_error(regressor_path):
    features = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    session = ort.InferenceSession(str(regressor_path), providers=["CPUExecutionProvider"])
    predictions = session.run(None, {"x": features})[0][:, 0]
    targets = predictions + 0.5
    result = evaluate(regressor_path, Dataset({"x": features}, targets, "memory"))
    assert result == {"task": "regression", "rows": 20, "mae": pytest.approx(0.5, abs=1e-5)}


def test_evaluate__model_with_first_dim_fixed_at_1__runs_row_by_row_with_the_same_results(mlp_path, fixed_batch_path):
    features = np.random.default_rng(1).standard_normal((7, 16)).astype(np.float32)
    labels = np.arange(7) % 10
    dataset = Dataset({"x": features}, labels, "memory")
    assert evaluate(fixed_batch_path, dataset) == evaluate(mlp_path, dataset, batch_size=3)


def test_evaluate__without_labels__is_a_dataset_error(digits, tmp_path):
    path = tmp_path / "unlabelled.npz"
    np.savez(path, input=digits.x_test)
    with pytest.raises(DatasetError, match="no labels"):
        evaluate(digits.model, path)


def test_agreement__without_a_dataset__uses_generated_inputs(mlp_path, tmp_path):
    copy = tmp_path / "copy.onnx"
    shutil.copy(mlp_path, copy)
    figures = agreement(mlp_path, copy)
    assert figures["source"] == "generated inputs" and figures["rows"] == 32
    assert figures["top1_agreement"] == 1.0 and figures["max_abs_diff"] == 0.0


def test_agreement__fixed_batch_model__generates_one_row_per_seed(fixed_batch_path):
    assert agreement(fixed_batch_path, fixed_batch_path, rows=5)["rows"] == 5


def test_agreement__with_a_dataset__compares_the_scores_not_the_int64_labels(digits):
    figures = agreement(digits.model, digits.model, digits.npz)
    assert figures["source"] == "dataset digits_test.npz"
    assert figures["compared_output"] == 1  # skl2onnx puts "label" first, "probabilities" second


def test_verify_variant__identical_copy__is_verified(digits, tmp_path):
    copy = tmp_path / "copy.onnx"
    shutil.copy(digits.model, copy)
    result = verify_variant(digits.model, copy, digits.npz)
    assert result["verified"] and result["top1_agreement"] == 1.0


def test_verify_variant__heavily_pruned_model__is_not_verified_and_says_why(mlp_path, tmp_path):
    dst = tmp_path / "pruned.onnx"
    prune(mlp_path, dst, sparsity=0.95)
    result = verify_variant(mlp_path, dst)
    assert not result["verified"]
    assert "top-1 agreement" in result["reason"]


def test_verify_variant__regressor__uses_relative_error(regressor_path, tmp_path):
    dst = tmp_path / "pruned.onnx"
    prune(regressor_path, dst, sparsity=0.9)
    result = verify_variant(regressor_path, dst, max_relative_error=0.01)
    assert result["top1_agreement"] is None
    assert not result["verified"] and "relative error" in result["reason"]


def test_verify_variant__file_onnxruntime_cannot_load__raises(mlp_path, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(mlp_path.read_bytes()[:100])
    with pytest.raises(TransformError, match="onnxruntime cannot load broken.onnx"):
        verify_variant(mlp_path, broken)


def test_verify_variant__variant_with_other_input_names__raises_because_it_cannot_run(mlp_path, cnn_path):
    with pytest.raises(TransformError, match="cannot run"):
        verify_variant(mlp_path, cnn_path)
