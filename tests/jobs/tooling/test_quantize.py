from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

from jobs.tooling.errors import DatasetError, TransformError
from jobs.tooling.evaluate import evaluate, verify_variant
from jobs.tooling.modelfile import iter_graphs
from jobs.tooling.quantize import quantize_dynamic, quantize_static


def op_types(path) -> set[str]:
    model = onnx.load(str(path))
    return {node.op_type for graph in iter_graphs(model.graph) for node in graph.node}


def test_quantize_dynamic__mlp__is_smaller_uses_integer_matmuls_and_agrees(mlp_path, tmp_path):
    dst = tmp_path / "int8.onnx"
    report = quantize_dynamic(mlp_path, dst)
    assert os.path.getsize(dst) < os.path.getsize(mlp_path) / 2.5
    assert "MatMulInteger" in op_types(dst)
    assert report.details["quantized_nodes"] > 0 and report.transform == "quantize_dynamic"
    assert verify_variant(mlp_path, dst)["verified"]


def test_quantize_dynamic__digits__keeps_accuracy_within_one_point(digits, tmp_path):
    dst = tmp_path / "digits_int8.onnx"
    quantize_dynamic(digits.model, dst, per_channel=True)
    parent = evaluate(digits.model, digits.npz)["accuracy"]
    assert evaluate(dst, digits.npz)["accuracy"] >= parent - 0.01


def test_quantize_dynamic__constant_weights__are_moved_to_initializers_and_logged(constant_weights_path, tmp_path):
    dst = tmp_path / "int8.onnx"
    report = quantize_dynamic(constant_weights_path, dst)
    assert any("moved 6 Constant-node tensors to initializers" in line for line in report.log)
    assert "MatMulInteger" in op_types(dst)


def test_quantize_dynamic__weights_inside_if_branches__are_reached_and_quantized(if_subgraph_path, tmp_path):
    dst = tmp_path / "int8.onnx"
    report = quantize_dynamic(if_subgraph_path, dst)
    branch_ops = {n.op_type for g in list(iter_graphs(onnx.load(str(dst)).graph))[1:] for n in g.node}
    assert "MatMulInteger" in branch_ops
    assert any("Constant-node" in line for line in report.log)
    assert verify_variant(if_subgraph_path, dst)["verified"]


def test_quantize_static__weights_inside_if_branches__fail_as_nothing_to_quantize(if_subgraph_path, tmp_path):
    dataset = tmp_path / "calibration.npz"
    np.savez(dataset, x=np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32))
    dst = tmp_path / "int8.onnx"
    with pytest.raises(TransformError, match="nothing to quantize.*subgraphs are out of static quantization's reach"):
        quantize_static(if_subgraph_path, dst, dataset=dataset)
    assert list(tmp_path.iterdir()) == [dataset]  # no variant, no temp file


def test_quantize_dynamic__model_without_weights__fails_as_nothing_to_quantize_and_leaves_no_file(tmp_path):
    from jobs.tooling.reference_models import float_input, make_model

    model = make_model(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], [float_input("x", ["N", 4])], [float_input("y", ["N", 4])]
    )
    src = tmp_path / "relu.onnx"
    onnx.save(model, str(src))
    with pytest.raises(TransformError, match="nothing to quantize"):
        quantize_dynamic(src, tmp_path / "int8.onnx")
    assert list(tmp_path.iterdir()) == [src]


@pytest.mark.parametrize("transform", [quantize_dynamic, quantize_static])
def test_quantize__already_quantized_model__is_refused(transform, quantized_path, digits, tmp_path):
    kwargs = {"dataset": digits.npz} if transform is quantize_static else {}
    with pytest.raises(TransformError, match="already quantized .*MatMulInteger"):
        transform(quantized_path, tmp_path / "again.onnx", **kwargs)
    assert not (tmp_path / "again.onnx").exists()


def test_quantize_static__without_a_dataset__is_refused(mlp_path, tmp_path):
    with pytest.raises(TransformError, match="needs a calibration dataset"):
        quantize_static(mlp_path, tmp_path / "int8.onnx")
    assert list(tmp_path.iterdir()) == []


def test_quantize_static__dataset_not_matching_the_model__raises_dataset_error(mlp_path, digits, tmp_path):
    with pytest.raises(DatasetError, match="missing array for input 'x'"):
        quantize_static(mlp_path, tmp_path / "int8.onnx", dataset=digits.npz)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_quantize_static__digits__qdq_model_keeps_accuracy_within_a_point(digits, tmp_path, method):
    dst = tmp_path / "digits_qdq.onnx"
    report = quantize_static(digits.model, dst, dataset=digits.npz, calibrate_method=method, max_calibration_rows=128)
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(dst)
    assert report.details["calibration_rows"] == 128
    parent = evaluate(digits.model, digits.npz)["accuracy"]
    assert evaluate(dst, digits.npz)["accuracy"] >= parent - 0.01


def test_quantize_static__cnn__quantizes_conv_and_gemm(cnn_path, tmp_path):
    dataset = tmp_path / "images.npz"
    np.savez(dataset, x=np.random.default_rng(0).standard_normal((32, 1, 8, 8)).astype(np.float32))
    dst = tmp_path / "cnn_qdq.onnx"
    quantize_static(cnn_path, dst, dataset=dataset, per_channel=True)
    assert verify_variant(cnn_path, dst, dataset)["verified"]


def test_quantize_dynamic__bad_parameter__is_refused_before_any_work(mlp_path, tmp_path):
    with pytest.raises(TransformError, match="weight_type='int4' must be one of"):
        quantize_dynamic(mlp_path, tmp_path / "int8.onnx", weight_type="int4")


def test_quantize_dynamic__quantizer_crashing_halfway__leaves_no_file_and_says_so(mlp_path, tmp_path, monkeypatch):
    def crash_after_writing(src, dst, **kwargs):
        with open(dst, "wb") as handle:
            handle.write(b"half a model")
        raise MemoryError("out of memory")

    monkeypatch.setattr("jobs.tooling.quantize.ort_quantize_dynamic", crash_after_writing)
    with pytest.raises(TransformError, match="onnxruntime's quantizer failed: MemoryError: out of memory"):
        quantize_dynamic(mlp_path, tmp_path / "int8.onnx")
    assert list(tmp_path.iterdir()) == []


def test_quantize_static__csv_dataset__calibrates_like_npz(digits, tmp_path):
    report = quantize_static(digits.model, tmp_path / "qdq.onnx", dataset=digits.csv, max_calibration_rows=64)
    assert report.details["calibration_rows"] == 64
    assert "digits_test.csv" in report.log[0]


def test_quantize_static__model_with_first_dim_fixed_at_1__calibrates_row_by_row(fixed_batch_path, tmp_path):
    dataset = tmp_path / "rows.npz"
    np.savez(dataset, x=np.random.default_rng(0).standard_normal((10, 16)).astype(np.float32))
    dst = tmp_path / "qdq.onnx"
    quantize_static(fixed_batch_path, dst, dataset=dataset)
    assert verify_variant(fixed_batch_path, dst, dataset)["verified"]
