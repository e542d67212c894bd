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


def test_quantize_static__per_channel_qdq_on_an_opset_11_model__is_converted_to_13_and_loads(cnn_path, tmp_path):
    # PaddleOCR exports are opset 11, where DequantizeLinear has no axis: the per-channel file failed to load.
    model = onnx.load(str(cnn_path))
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 11  # Conv, Relu, GlobalAveragePool, Flatten and Gemm mean the same at 11
    old = tmp_path / "cnn-opset11.onnx"
    onnx.save(model, str(old))
    dataset = tmp_path / "images.npz"
    np.savez(dataset, x=np.random.default_rng(0).standard_normal((32, 1, 8, 8)).astype(np.float32))
    dst = tmp_path / "cnn_qdq.onnx"
    report = quantize_static(old, dst, dataset=dataset, per_channel=True, quant_format="qdq")
    assert any("opset 11 converted to 13" in line for line in report.log)
    assert verify_variant(old, dst, dataset)["verified"]  # loads and runs in onnxruntime, agrees with its parent


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


@pytest.fixture(scope="module")
def conv_matmul_path(tmp_path_factory):
    """Two Conv layers then two MatMuls: the shape where quantizing Conv dynamically costs speed on x86."""
    from onnx import helper, numpy_helper

    from jobs.tooling.reference_models import float_input, make_model

    rng = np.random.default_rng(3)
    initializers = [
        numpy_helper.from_array((rng.standard_normal((16, 3, 3, 3)) / 5).astype(np.float32), "c1"),
        numpy_helper.from_array((rng.standard_normal((32, 16, 3, 3)) / 12).astype(np.float32), "c2"),
        numpy_helper.from_array((rng.standard_normal((32, 256)) / 6).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal((256, 10)) / 16).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "c1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2"], ["h2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w1"], ["m1"]),
        helper.make_node("Relu", ["m1"], ["a1"]),
        helper.make_node("MatMul", ["a1", "w2"], ["y"]),
    ]
    model = make_model(nodes, [float_input("x", ["N", 3, 16, 16])], [float_input("y", ["N", 10])], initializers)
    path = tmp_path_factory.mktemp("conv_matmul") / "conv_matmul.onnx"
    onnx.save(model, str(path))
    return path


def weight_dtypes(path, op_type: str) -> set[int]:
    """Element types of the weight input (slot 1) of every ``op_type`` node."""
    model = onnx.load(str(path))
    initializers = {t.name: t.data_type for t in model.graph.initializer}
    return {initializers[n.input[1]] for n in model.graph.node if n.op_type == op_type and n.input[1] in initializers}


def test_quantize_dynamic__matmul_only__leaves_conv_in_float_and_is_smaller(conv_matmul_path, tmp_path):
    only = tmp_path / "matmul_only.onnx"
    everything = tmp_path / "all.onnx"
    report = quantize_dynamic(conv_matmul_path, only, op_types=["MatMul"])
    quantize_dynamic(conv_matmul_path, everything)
    assert "Conv" in op_types(only) and "ConvInteger" not in op_types(only)
    assert "MatMulInteger" in op_types(only) and "ConvInteger" in op_types(everything)
    assert report.details["op_types"] == ["MatMul"]
    parent_size = os.path.getsize(conv_matmul_path)
    assert os.path.getsize(everything) < os.path.getsize(only) < 0.75 * parent_size
    # Random weights give near-tied logits, so judge by the outputs' relative error, not by top-1.
    assert verify_variant(conv_matmul_path, only)["relative_error"] < 0.05


def test_quantize_dynamic__uint8_weights__gives_u8u8_conv_integer_that_runs(conv_matmul_path, tmp_path):
    dst = tmp_path / "u8.onnx"
    quantize_dynamic(conv_matmul_path, dst, weight_type="uint8")
    assert weight_dtypes(dst, "ConvInteger") == {onnx.TensorProto.UINT8}
    assert verify_variant(conv_matmul_path, dst)["relative_error"] < 0.05


def test_quantize_dynamic__gemm_in_op_types__is_refused_pointing_to_matmul(cnn_path, tmp_path):
    with pytest.raises(TransformError, match="dynamic quantization cannot quantize Gemm.*MatMul covers Gemm layers"):
        quantize_dynamic(cnn_path, tmp_path / "int8.onnx", op_types=["MatMul", "Gemm"])
    assert list(tmp_path.iterdir()) == []


def test_quantize_dynamic__matmul_only__reaches_gemm_weights_and_leaves_conv(cnn_path, tmp_path):
    dst = tmp_path / "int8.onnx"
    quantize_dynamic(cnn_path, dst, op_types=["MatMul"])
    assert "Conv" in op_types(dst) and "MatMulInteger" in op_types(dst) and "Gemm" not in op_types(dst)
    assert verify_variant(cnn_path, dst)["relative_error"] < 0.05


def test_quantize_dynamic__matmul_only_on_a_model_without_matmul__says_what_was_asked(tmp_path):
    from onnx import helper, numpy_helper

    from jobs.tooling.reference_models import float_input, make_model

    kernel = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "k")
    model = make_model(
        [helper.make_node("Conv", ["x", "k"], ["y"])],
        [float_input("x", ["N", 1, 8, 8])],
        [float_input("y", ["N", 4, 6, 6])],
        [kernel],
    )
    src = tmp_path / "conv.onnx"
    onnx.save(model, str(src))
    with pytest.raises(TransformError, match=r"nothing to quantize: no node of the types asked for \(MatMul\)"):
        quantize_dynamic(src, tmp_path / "int8.onnx", op_types=["MatMul"])
    assert list(tmp_path.iterdir()) == [src]


@pytest.mark.parametrize("op_types", [[], [3], "MatMul"])
def test_quantize_dynamic__malformed_op_types__are_refused(mlp_path, tmp_path, op_types):
    with pytest.raises(TransformError, match="op_types"):
        quantize_dynamic(mlp_path, tmp_path / "int8.onnx", op_types=op_types)


def test_quantize_static__per_channel_qdq_conv_only__keeps_gemm_float_and_agrees(cnn_path, tmp_path):
    dataset = tmp_path / "images.npz"
    np.savez(dataset, x=np.random.default_rng(0).standard_normal((32, 1, 8, 8)).astype(np.float32))
    dst = tmp_path / "conv_qdq.onnx"
    report = quantize_static(
        cnn_path, dst, dataset=dataset, per_channel=True, activation_type="uint8", reduce_range=True, op_types=["Conv"]
    )
    model = onnx.load(str(dst))
    produced_by = {out: node for node in model.graph.node for out in node.output}
    gemm = next(node for node in model.graph.node if node.op_type == "Gemm")
    assert gemm.input[1] not in produced_by  # the Gemm weight is still the float initializer
    conv_weights = [produced_by[n.input[1]].op_type for n in model.graph.node if n.op_type == "Conv"]
    assert conv_weights == ["DequantizeLinear", "DequantizeLinear"]
    assert report.details["format"] == "QDQ" and report.details["activation_type"] == "uint8"
    assert verify_variant(cnn_path, dst, dataset)["verified"]


def test_quantize_static__qoperator_format__writes_qlinear_ops_that_run(cnn_path, tmp_path):
    dataset = tmp_path / "images.npz"
    np.savez(dataset, x=np.random.default_rng(0).standard_normal((32, 1, 8, 8)).astype(np.float32))
    dst = tmp_path / "qlinear.onnx"
    report = quantize_static(cnn_path, dst, dataset=dataset, quant_format="qoperator", activation_type="uint8")
    assert "QLinearConv" in op_types(dst) and report.details["format"] == "QOperator"
    assert verify_variant(cnn_path, dst, dataset)["verified"]


def test_quantize_static__op_type_the_format_cannot_quantize__is_refused_before_calibrating(digits, tmp_path):
    with pytest.raises(TransformError, match=r"static quantization \(qdq\) cannot quantize Softmax"):
        quantize_static(digits.model, tmp_path / "q.onnx", dataset=digits.npz, op_types=["Softmax"])


def test_quantized_variant__imports_only_the_domains_it_uses_so_older_releases_take_it(mlp_path, tmp_path):
    from devices.catalog.builtin import builtin_profile
    from jobs.tooling.compat import check_device
    from jobs.tooling.inspect import inspect_model
    from jobs.tooling.modelfile import load_model

    quantize_dynamic(mlp_path, tmp_path / "q.onnx")
    facts = inspect_model(load_model(tmp_path / "q.onnx"))

    assert set(facts["opset_imports"]) <= {"ai.onnx", "com.microsoft"}
    assert check_device(facts, 1000, builtin_profile("raspberry-pi-4"))[0]


@pytest.mark.parametrize("activation_type", ["int8", "uint8"])
def test_quantize_static__per_channel_on_the_scikit_learn_demo_model__writes_a_model_that_keeps_accuracy(
    digits_demo, tmp_path, activation_type
):
    # skl2onnx's MLP carries 2-D biases, on which onnxruntime's int32-bias scale adjustment raises.
    model_path, data_path, _accuracy = digits_demo
    dst = tmp_path / "per-channel.onnx"
    report = quantize_static(
        model_path, dst, dataset=data_path, per_channel=True, activation_type=activation_type, weight_type="int8"
    )
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(dst)
    assert any("int32-bias weight-scale adjustment is off" in line for line in report.log)
    assert evaluate(dst, data_path)["accuracy"] >= evaluate(model_path, data_path)["accuracy"] - 0.01
