from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from jobs.tooling.compat import check_device
from jobs.tooling.errors import TransformError
from jobs.tooling.evaluate import verify_variant
from jobs.tooling.graph_opt import optimize_graph
from jobs.tooling.inspect import inspect_model
from jobs.tooling.modelfile import load_model
from jobs.tooling.ort_format import to_ort
from tests.jobs.tooling.test_kernel_check import profile


@pytest.mark.parametrize("level", ["basic", "extended"])
def test_optimize_graph__mlp__fuses_nodes_and_agrees_with_its_parent(mlp_path, tmp_path, level):
    dst = tmp_path / f"{level}.onnx"
    report = optimize_graph(mlp_path, dst, level=level)
    assert report.details["nodes_after"] < report.details["nodes_before"]
    assert verify_variant(mlp_path, dst)["relative_error"] < 1e-5


def test_optimize_graph__extended_level__reports_onnxruntime_only_ops(cnn_path, tmp_path):
    report = optimize_graph(cnn_path, tmp_path / "extended.onnx", level="extended")
    assert report.details["contrib_ops"] == ["com.microsoft.FusedConv"]
    assert any("device must run onnxruntime" in line for line in report.log)


def test_optimize_graph__unknown_level__is_refused(mlp_path, tmp_path):
    with pytest.raises(TransformError, match="level='all' must be one of 'basic', 'extended'"):
        optimize_graph(mlp_path, tmp_path / "x.onnx", level="all")
    assert list(tmp_path.iterdir()) == []


def test_optimize_graph__ort_format_source__is_refused_and_leaves_no_file(mlp_path, tmp_path):
    ort_path = tmp_path / "model.ort"
    to_ort(mlp_path, ort_path)
    with pytest.raises(TransformError, match="already in ORT format"):
        optimize_graph(ort_path, tmp_path / "optimized.onnx")
    assert list(tmp_path.iterdir()) == [ort_path]


def layer_norm_pattern_at_opset_12():
    """A layer normalization written out in primitive ops at opset 12, which has no LayerNormalization: onnxruntime's
    extended optimization fuses it into its own LayerNormalization, which onnx.checker does not know at opset 12."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])
    weights = [
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
        numpy_helper.from_array(np.ones(8, np.float32), "g"),
        numpy_helper.from_array(np.zeros(8, np.float32), "b"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[-1]),
        helper.make_node("Sub", ["x", "m"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["p"]),
        helper.make_node("ReduceMean", ["p"], ["v"], axes=[-1]),
        helper.make_node("Add", ["v", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["s"]),
        helper.make_node("Div", ["d", "s"], ["n"]),
        helper.make_node("Mul", ["n", "g"], ["ng"]),
        helper.make_node("Add", ["ng", "b"], ["y"]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "ln", [x], [y], weights), opset_imports=[helper.make_opsetid("", 12)]
    )
    model.ir_version = 7
    return model


def test_optimize_graph__contrib_op_output__is_loaded_as_the_runtimes_own_and_runs_only_on_its_release(tmp_path):
    src, dst = tmp_path / "ln.onnx", tmp_path / "ln-opt.onnx"
    onnx.save(layer_norm_pattern_at_opset_12(), src)

    report = optimize_graph(src, dst, level="extended")
    optimized = onnx.load(dst)

    assert [node.op_type for node in optimized.graph.node] == ["LayerNormalization"]
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(optimized)  # the case: onnx.checker refuses what onnxruntime wrote
    facts = inspect_model(load_model(dst))  # the console's loader takes it, stamped as onnxruntime's own
    assert (
        facts["runtime_specific"]
        == report.details["written_for"]
        == {
            "release": ort.__version__,
            "provider": "CPUExecutionProvider",
            "level": "extended",
        }
    )
    verdicts = {slug: check_device(facts, 1000, profile(slug)) for slug in ("x86-gateway", "raspberry-pi-4")}
    assert verdicts["x86-gateway"] == (True, [])
    assert verdicts["raspberry-pi-4"][1][0].startswith(
        f"written by onnxruntime {'.'.join(ort.__version__.split('.')[:2])}'s offline graph optimizer (extended level)"
    )


def test_optimize_graph__basic_level__stays_portable(mlp_path, tmp_path):
    optimize_graph(mlp_path, tmp_path / "basic.onnx", level="basic")

    facts = inspect_model(load_model(tmp_path / "basic.onnx"))

    assert facts["runtime_specific"]["level"] == "basic"
    assert check_device(facts, 1000, profile("raspberry-pi-4"))[0]
