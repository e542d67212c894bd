"""compress_weights: weights stored in int8 or fp16, restored to float32 when onnxruntime loads the model."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from devices.catalog.builtin import builtin_profile
from jobs.tooling.compat import check_device
from jobs.tooling.errors import TransformError
from jobs.tooling.inspect import inspect_model
from jobs.tooling.quantize import quantize_dynamic
from jobs.tooling.reference_models import float_input, make_model, mlp
from jobs.tooling.transforms import run_transform

# The Raspberry Pi type's release (tests/jobs/tooling/test_runnable.py installs it the same way).
ORT_1_16 = Path(__file__).resolve().parents[3] / "var" / "registry-venvs" / "onnxruntime-1.16.3" / "bin" / "python"


def branchy_convnet(seed: int = 4) -> onnx.ModelProto:
    """A Conv whose kernel is a Constant node, then a MatMul in each branch of an If, each branch's weight in its own
    Constant node: the layouts the OCR models and silero-vad use."""
    rng = np.random.default_rng(seed)
    kernel = (rng.standard_normal((32, 8, 3, 3)) / 8).astype(np.float32)
    kernel[5] *= 0.001  # a quiet channel: a single int8 scale for the tensor would round it away
    conv_kernel = helper.make_node("Constant", [], ["kernel"], value=numpy_helper.from_array(kernel, "kernel"))

    def branch(name: str, scale: float) -> onnx.GraphProto:
        weight = (rng.standard_normal((32, 64)) * scale).astype(np.float32)
        nodes = [
            helper.make_node("Constant", [], [f"{name}_w"], value=numpy_helper.from_array(weight, f"{name}_w")),
            helper.make_node("MatMul", ["pooled", f"{name}_w"], [f"{name}_y"]),
        ]
        return helper.make_graph(nodes, name, [], [float_input(f"{name}_y", ["N", 64])])

    nodes = [
        conv_kernel,
        helper.make_node("Conv", ["x", "kernel"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["gp"]),
        helper.make_node("Flatten", ["gp"], ["pooled"]),
        helper.make_node("If", ["flag"], ["y"], then_branch=branch("then", 0.2), else_branch=branch("else", 0.05)),
    ]
    flag = helper.make_tensor_value_info("flag", onnx.TensorProto.BOOL, [])
    return make_model(nodes, [float_input("x", ["N", 8, 16, 16]), flag], [float_input("y", ["N", 64])])


def outputs(path, feeds: dict, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.fixture
def parent(tmp_path):
    path = tmp_path / "parent.onnx"
    onnx.save(branchy_convnet(), path)
    return path


def feeds_for(flag: bool) -> dict:
    x = np.random.default_rng(9).standard_normal((4, 8, 16, 16)).astype(np.float32)
    return {"x": x, "flag": np.array(flag)}


@pytest.mark.parametrize("precision, size_at_most, error_at_most", [("int8", 0.32, 0.02), ("fp16", 0.55, 0.002)])
def test_compress_weights__constants_and_branch_weights__smaller_file_close_outputs(
    tmp_path, parent, precision, size_at_most, error_at_most
):
    variant = tmp_path / f"{precision}.onnx"
    report = run_transform("compress_weights", parent, variant, precision=precision)

    assert report.details["tensors"] == 3  # the kernel and both branches' weights; Constants moved first
    assert variant.stat().st_size <= size_at_most * parent.stat().st_size
    onnx.checker.check_model(onnx.load(variant))
    for flag in (True, False):
        expected, got = outputs(parent, feeds_for(flag)), outputs(variant, feeds_for(flag))
        assert np.linalg.norm(got - expected) <= error_at_most * np.linalg.norm(expected)


def test_compress_weights__int8__one_scale_per_output_channel_keeps_a_quiet_channel(tmp_path, parent):
    variant = tmp_path / "int8.onnx"
    run_transform("compress_weights", parent, variant, precision="int8")
    model = onnx.load(variant)
    stored = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}

    assert stored["kernel_scale"].shape == (32, 1, 1, 1)
    kernel = numpy_helper.to_array(branchy_convnet().graph.node[0].attribute[0].t)
    restored = stored["kernel_int8"].astype(np.float32) * stored["kernel_scale"]
    # The quiet channel keeps its shape (127 steps of its own), which one scale for the tensor would zero out.
    assert np.abs(restored[5] - kernel[5]).max() <= np.abs(kernel[5]).max() / 127


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_compress_weights__onnxruntime_folds_the_restore_nodes__the_device_runs_the_float32_graph(
    tmp_path, parent, precision
):
    """The speed claim: at onnxruntime's default (basic and above) optimization the stored weights are folded back
    into float32 initializers when the session is created, so no Cast or Mul runs per inference."""
    variant = tmp_path / f"{precision}.onnx"
    run_transform("compress_weights", parent, variant, precision=precision)
    optimized = tmp_path / "optimized.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(variant), options, providers=["CPUExecutionProvider"])

    folded = onnx.load(optimized)
    main_ops = [node.op_type for node in folded.graph.node]
    assert "Cast" not in main_ops and "Mul" not in main_ops
    kernel = next(t for t in folded.graph.initializer if t.name == "kernel")
    assert kernel.data_type == onnx.TensorProto.FLOAT


@pytest.mark.skipif(not ORT_1_16.exists(), reason="onnxruntime 1.16.3's wheel is not installed under var/")
def test_compress_weights__onnxruntime_1_16_folds_them_too(tmp_path, parent):
    script = (
        "import sys, onnxruntime as ort\n"
        "options = ort.SessionOptions()\n"
        "options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC\n"
        "options.optimized_model_filepath = sys.argv[2]\n"
        "ort.InferenceSession(sys.argv[1], options, providers=['CPUExecutionProvider'])\n"
    )
    for precision in ("int8", "fp16"):
        variant = tmp_path / f"{precision}.onnx"
        run_transform("compress_weights", parent, variant, precision=precision)
        folded = tmp_path / f"{precision}-folded.onnx"
        subprocess.run([str(ORT_1_16), "-c", script, str(variant), str(folded)], capture_output=True, check=True)
        ops = {node.op_type for node in onnx.load(folded).graph.node}
        assert ops == {"Conv", "Relu", "GlobalAveragePool", "Flatten", "If"}


def test_compress_weights__facts__the_model_still_computes_in_float32_and_runs_where_the_parent_runs(tmp_path, parent):
    pi = builtin_profile("raspberry-pi-4")
    for precision in ("int8", "fp16"):
        variant = tmp_path / f"{precision}.onnx"
        run_transform("compress_weights", parent, variant, precision=precision)
        facts = inspect_model(onnx.load(variant))

        assert facts["precision"]["compute"] == "fp32"
        assert facts["precision"]["stored"] == precision
        compatible, reasons = check_device(facts, variant.stat().st_size, pi)
        assert compatible, reasons
        assert not [reason for reason in reasons if "fp16" in reason]  # no "expect it slower" advice
    assert "fp16" in inspect_model(onnx.load(tmp_path / "fp16.onnx"))["precision"]["present"]


def test_compress_weights__fp16_storage__refused_by_the_mobile_package_and_int8_storage_runs_there(tmp_path):
    # A model of the mobile package's operators (no If), so that only the stored precision decides.
    parent = tmp_path / "mlp.onnx"
    onnx.save(mlp([64, 128, 10]), parent)
    phone = builtin_profile("android-arm64-phone")
    verdicts = {}
    for precision in ("int8", "fp16"):
        variant = tmp_path / f"{precision}.onnx"
        run_transform("compress_weights", parent, variant, precision=precision)
        verdicts[precision] = check_device(inspect_model(onnx.load(variant)), variant.stat().st_size, phone)

    assert verdicts["int8"][0], verdicts["int8"][1]
    compatible, reasons = verdicts["fp16"]
    assert not compatible
    assert any("Cast" in reason and "float16" in reason for reason in reasons), reasons


def test_compress_weights__fp16__a_weight_beyond_fp16_range_stays_float32(tmp_path):
    big = np.full((64, 32), 1e6, np.float32)
    small = np.full((64, 32), 0.5, np.float32)
    nodes = [helper.make_node("MatMul", ["x", "big"], ["h"]), helper.make_node("MatMul", ["x", "small"], ["y"])]
    model = make_model(
        nodes,
        [float_input("x", ["N", 64])],
        [float_input("h", ["N", 32]), float_input("y", ["N", 32])],
        [numpy_helper.from_array(big, "big"), numpy_helper.from_array(small, "small")],
    )
    parent, variant = tmp_path / "p.onnx", tmp_path / "v.onnx"
    onnx.save(model, parent)

    report = run_transform("compress_weights", parent, variant, precision="fp16")

    stored = {t.name: t.data_type for t in onnx.load(variant).graph.initializer}
    assert stored["big"] == onnx.TensorProto.FLOAT
    assert stored["small_fp16"] == onnx.TensorProto.FLOAT16
    assert report.details["kept_float32"] == 1
    assert any("beyond fp16's range" in line for line in report.log)


def test_compress_weights__refusals_say_why(tmp_path):
    tiny = tmp_path / "tiny.onnx"
    onnx.save(mlp([4, 8, 3]), tiny)
    with pytest.raises(TransformError, match="no float32 weight of at least 1024 values"):
        run_transform("compress_weights", tiny, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()

    quantized = tmp_path / "q.onnx"
    onnx.save(mlp([64, 128, 10]), tmp_path / "f.onnx")
    quantize_dynamic(tmp_path / "f.onnx", quantized)
    with pytest.raises(TransformError, match="already quantized"):
        run_transform("compress_weights", quantized, tmp_path / "out.onnx")

    with pytest.raises(TransformError, match="precision"):
        run_transform("compress_weights", tiny, tmp_path / "out.onnx", precision="int4")


def test_compress_weights__an_initializer_that_is_also_an_input__is_left_feedable(tmp_path):
    weight = np.ones((64, 32), np.float32)
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [float_input("x", ["N", 64]), float_input("w", [64, 32])],
        [float_input("y", ["N", 32])],
        [numpy_helper.from_array(weight, "w")],
    )
    parent = tmp_path / "p.onnx"
    onnx.save(model, parent)
    with pytest.raises(TransformError, match="nothing to compress"):
        run_transform("compress_weights", parent, tmp_path / "v.onnx")


def test_compress_weights__int8__a_bias_vector_stays_float32_and_fp16_stores_it(tmp_path):
    rng = np.random.default_rng(5)
    weight = (rng.standard_normal((64, 2048)) / 8).astype(np.float32)
    bias = (rng.standard_normal(2048) * 3).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])]
    model = make_model(
        nodes,
        [float_input("x", ["N", 64])],
        [float_input("y", ["N", 2048])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    parent = tmp_path / "p.onnx"
    onnx.save(model, parent)
    stored = {}
    for precision in ("int8", "fp16"):
        run_transform("compress_weights", parent, tmp_path / f"{precision}.onnx", precision=precision)
        stored[precision] = {t.name: t.data_type for t in onnx.load(tmp_path / f"{precision}.onnx").graph.initializer}

    assert stored["int8"]["b"] == onnx.TensorProto.FLOAT and stored["int8"]["w_int8"] == onnx.TensorProto.INT8
    assert stored["fp16"]["b_fp16"] == onnx.TensorProto.FLOAT16
