from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from jobs.tooling.errors import TransformError
from jobs.tooling.evaluate import evaluate, verify_variant
from jobs.tooling.fp16 import convert_fp16


def test_convert_fp16__mlp__halves_the_file_and_keeps_float32_inputs(mlp_path, tmp_path):
    dst = tmp_path / "fp16.onnx"
    report = convert_fp16(mlp_path, dst)
    assert os.path.getsize(dst) < 0.6 * os.path.getsize(mlp_path)
    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"
    assert report.details["keep_io_types"] is True
    figures = verify_variant(mlp_path, dst)
    assert figures["verified"] and figures["relative_error"] < 1e-2


def test_convert_fp16__without_keep_io_types__takes_fp16_inputs_and_still_evaluates(digits, tmp_path):
    dst = tmp_path / "fp16_io.onnx"
    convert_fp16(digits.model, dst, keep_io_types=False)
    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float16)"
    # The float32 dataset is cast to the variant's input type.
    assert evaluate(dst, digits.npz)["accuracy"] == pytest.approx(
        evaluate(digits.model, digits.npz)["accuracy"], abs=0.01
    )


def test_convert_fp16__weights_beyond_65504__fail_with_that_reason_and_leave_no_file(huge_values_path, tmp_path):
    dst = tmp_path / "fp16.onnx"
    with pytest.raises(TransformError, match=r"beyond fp16's range of ±65504: 'b0' \(max \|x\| = 1e\+06\)"):
        convert_fp16(huge_values_path, dst)
    assert list(tmp_path.iterdir()) == []


def test_convert_fp16__already_quantized_model__is_refused(quantized_path, tmp_path):
    with pytest.raises(TransformError, match="already quantized"):
        convert_fp16(quantized_path, tmp_path / "fp16.onnx")


def test_convert_fp16__constant_node_overflow__is_found_too(tmp_path):
    from onnx import helper, numpy_helper

    from jobs.tooling.reference_models import float_input, make_model
    from tests.jobs.tooling.conftest import save

    big = numpy_helper.from_array(np.array([7e4], np.float32), "big")
    model = make_model(
        [helper.make_node("Constant", [], ["big"], value=big), helper.make_node("Add", ["x", "big"], ["y"])],
        [float_input("x", ["N", 1])],
        [float_input("y", ["N", 1])],
    )
    with pytest.raises(TransformError, match="'big'"):
        convert_fp16(save(model, tmp_path, "big.onnx"), tmp_path / "fp16.onnx")


@pytest.mark.parametrize("keep_io_types", [True, False])
def test_convert_fp16__output__passes_the_onnx_checker_so_the_console_accepts_it(
    mlp_path, cnn_path, tmp_path, keep_io_types
):
    from jobs.tooling.modelfile import load_model as load_upload

    for source in (mlp_path, cnn_path):
        out = tmp_path / f"{source.stem}-{keep_io_types}.onnx"
        convert_fp16(source, out, keep_io_types=keep_io_types)
        load_upload(out)  # parse + onnx.checker, exactly as an upload or a check job does


@pytest.fixture(scope="module")
def sensitive_path(tmp_path_factory):
    """MatMul -> Exp -> ReduceMean -> Log: a log-mean-exp that fp16 alone overflows for large inputs."""
    from onnx import helper, numpy_helper

    from jobs.tooling.reference_models import float_input, make_model

    weights = (np.random.default_rng(4).standard_normal((32, 64)) / 2).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="project"),
        helper.make_node("Exp", ["h"], ["e"], name="exp"),
        helper.make_node("ReduceMean", ["e"], ["m"], name="mean", axes=[1], keepdims=1),
        helper.make_node("Log", ["m"], ["y"], name="log"),
    ]
    model = make_model(
        nodes, [float_input("x", ["N", 32])], [float_input("y", ["N", 1])], [numpy_helper.from_array(weights, "w")]
    )
    path = tmp_path_factory.mktemp("sensitive") / "sensitive.onnx"
    onnx.save(model, str(path))
    return path


def float32_nodes(path) -> set[str]:
    """Names of the nodes whose first input is float32 (Casts excluded)."""
    from onnx import shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(path)))
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.input]}
    return {n.name for n in model.graph.node if n.op_type != "Cast" and types.get(n.input[0]) == onnx.TensorProto.FLOAT}


def test_convert_fp16__sensitive_ops__stay_float32_behind_casts_by_default(sensitive_path, tmp_path):
    dst = tmp_path / "fp16.onnx"
    report = convert_fp16(sensitive_path, dst)
    assert float32_nodes(dst) == {"exp", "mean", "log"}  # the MatMul runs in fp16
    cast_targets = {
        attribute.i for node in onnx.load(str(dst)).graph.node if node.op_type == "Cast" for attribute in node.attribute
    }
    assert cast_targets == {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    assert report.details["float32_op_types"] == ["Exp", "Log", "ReduceMean"]
    assert any("kept in float32 for accuracy: Exp, Log, ReduceMean" in line for line in report.log)
    # onnxruntime's CPU provider runs ops without an fp16 kernel in float32 anyway, so the overflow a GPU would show
    # cannot be reproduced here: check that the variant agrees with its parent.
    x = np.random.default_rng(5).standard_normal((8, 32)).astype(np.float32)
    expected = ort.InferenceSession(str(sensitive_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(got, expected, rtol=1e-2)


def test_convert_fp16__nothing_kept__converts_every_node(sensitive_path, tmp_path):
    dst = tmp_path / "all_fp16.onnx"
    report = convert_fp16(sensitive_path, dst, keep_float32_ops=[])
    assert float32_nodes(dst) == set() and report.details["float32_op_types"] == []
    assert not any("kept in float32" in line for line in report.log)
    assert verify_variant(sensitive_path, dst)["nonfinite_outputs"] == 0


def test_convert_fp16__named_node__is_kept_float32_with_its_weight(sensitive_path, tmp_path):
    dst = tmp_path / "fp16.onnx"
    convert_fp16(sensitive_path, dst, keep_float32_ops=[], keep_float32_nodes=["project"])
    assert float32_nodes(dst) == {"project"}
    weight = next(t for t in onnx.load(str(dst)).graph.initializer if t.name == "w")
    assert weight.data_type == onnx.TensorProto.FLOAT


def test_convert_fp16__unknown_node_name__is_refused_and_leaves_no_file(sensitive_path, tmp_path):
    with pytest.raises(TransformError, match="keep_float32_nodes names nodes the model does not have: nope"):
        convert_fp16(sensitive_path, tmp_path / "fp16.onnx", keep_float32_nodes=["nope"])
    assert list(tmp_path.iterdir()) == []


def test_convert_fp16__non_string_op_types__are_refused(mlp_path, tmp_path):
    with pytest.raises(TransformError, match="keep_float32_ops must be a list of names"):
        convert_fp16(mlp_path, tmp_path / "fp16.onnx", keep_float32_ops=["Exp", 3])


def test_convert_fp16__if_branches_reading_the_outer_graph__are_sorted_and_the_model_runs(if_subgraph_path, tmp_path):
    # The branches read "x" from the graph around them: a sort that calls that a cycle fails the whole conversion.
    dst = tmp_path / "fp16.onnx"
    convert_fp16(if_subgraph_path, dst)
    onnx.checker.check_model(onnx.load(str(dst)))
    assert verify_variant(if_subgraph_path, dst)["verified"]


def test_convert_fp16__float32_op_inside_if_branches__gets_its_casts_there_and_the_model_runs(tmp_path):
    # onnxruntime's converter appends the Casts around a kept-float32 node to the main graph even when the node is in
    # a branch, where they read a value of the branch: the model was invalid ONNX ("topological sort" error).
    from onnx import helper, numpy_helper

    from jobs.tooling.reference_models import float_input, make_model, mlp_weights
    from tests.jobs.tooling.conftest import save

    weights = mlp_weights([16, 10])[0][0] / 4

    def branch(name: str, scale: float) -> onnx.GraphProto:
        return helper.make_graph(
            [
                helper.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_h"], name=f"{name}_project"),
                helper.make_node("Exp", [f"{name}_h"], [f"{name}_y"], name=f"{name}_exp"),
            ],
            name,
            [],
            [float_input(f"{name}_y", ["N", 10])],
            [numpy_helper.from_array(weights * scale, f"{name}_w")],
        )

    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.float32))),
        helper.make_node("Greater", ["total", "zero"], ["positive"]),
        helper.make_node("If", ["positive"], ["y"], then_branch=branch("then", 1.0), else_branch=branch("else", -1.0)),
    ]
    src = save(make_model(nodes, [float_input("x", ["N", 16])], [float_input("y", ["N", 10])]), tmp_path, "if.onnx")
    dst = tmp_path / "fp16.onnx"
    report = convert_fp16(src, dst)
    assert report.details["float32_op_types"] == ["Exp", "ReduceSum"]
    converted = onnx.load(str(dst))
    onnx.checker.check_model(converted, full_check=True)
    branches = {attr.name: attr.g for attr in next(n for n in converted.graph.node if n.op_type == "If").attribute}
    for branch_graph in branches.values():
        # The MatMul computes in fp16 and the Exp in float32, with the Casts between them inside the branch.
        assert [n.op_type for n in branch_graph.node].count("Cast") == 2
    for x in (np.ones((3, 16), np.float32), -np.ones((3, 16), np.float32)):
        expected = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        assert np.allclose(got, expected, rtol=1e-2)
